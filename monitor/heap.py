"""The garbage collector and a long-running process with a large, stable heap.

A full (generation 2) collection walks every container the collector tracks. In the
daemon most of them are made at start and live until exit: imported modules, the
sentiment lexicons, rules, the recovered detector state. Under a 5,000 posts/s load
such collections stalled the event loop for up to ~180 ms (measured with gc
callbacks during ``bench/pipeline.py --only live``). ``settle()`` collects once and
then freezes what is left (:func:`gc.freeze`): later collections skip it. Frozen
objects are still freed by reference counting when they are dropped; only cycles
among them would outlive the process, and start-up state has none worth collecting.

The pipeline allocates a few dozen short-lived objects per post, almost none of them
in reference cycles, so the default young-generation threshold (700 allocations)
runs a collection every ~20 posts; ``YOUNG`` makes that every ~300 posts. A larger
threshold (50,000) bought a few percent more replay throughput but raised the
1M-post replay's peak memory by ~3 MB; this one keeps memory as it was.
"""

from __future__ import annotations

import gc

YOUNG = (10_000, 10, 10)  # gc thresholds: generation 0, 1 and 2 (defaults 700, 10, 10)
_before: list[tuple[int, int, int]] = []  # the thresholds settle() replaced


def settle() -> int:
    """Collect, freeze every surviving object out of the collector's generations and
    raise the young-generation threshold; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    _before.append(gc.get_threshold())
    gc.set_threshold(*YOUNG)
    return gc.get_freeze_count()


def unsettle() -> None:
    """Give frozen objects back to the collector and restore its thresholds (a daemon
    that stops inside a longer process, such as the tests, leaves it as it found it)."""
    gc.unfreeze()
    if _before:
        gc.set_threshold(*_before.pop())
