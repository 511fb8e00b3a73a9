"""The garbage collector and a long-running process with a large, stable heap.

A full (generation 2) collection walks every container the collector tracks. In the
daemon most of them are made at start and live until exit: imported modules, the
sentiment lexicons, rules, the recovered detector state. Under a 5,000 posts/s load
such collections stalled the event loop for up to ~180 ms (measured with gc
callbacks during ``bench/pipeline.py --only live``). ``settle()`` collects once and
then freezes what is left (:func:`gc.freeze`): later collections skip it. Frozen
objects are still freed by reference counting when they are dropped; only cycles
among them would outlive the process, and start-up state has none worth collecting.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then move every surviving object out of the collector's generations;
    returns how many objects are frozen in all."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unsettle() -> None:
    """Give frozen objects back to the collector (a daemon that stops inside a longer
    process, such as the tests, leaves the collector as it found it)."""
    gc.unfreeze()
