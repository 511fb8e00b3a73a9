"""Outbound screen: the brand's own posts checked for off-message or suspicious content.

Independent checks (:mod:`.checks_content`, :mod:`.checks_risk`, :mod:`.checks_post`)
register themselves with a name, weight and reason (:mod:`.core`); their findings
add up to a score and a severity (critical >= 1.0, warning >= 0.5, info below).
:class:`OutboundScreen` runs the pure text checks (the ``screen`` command and the
benchmark use it); :class:`OutboundDetector` adds posting hours, bursts, the client
app and the approved-posts ledger, and raises one signal per flagged post.
"""

from __future__ import annotations

from monitor.detect.outbound.core import (
    CHECKS,
    CheckSpec,
    Finding,
    Hit,
    ScreenResult,
    check,
    severity_of,
)
from monitor.detect.outbound.detector import OutboundDetector
from monitor.detect.outbound.params import CheckParams, OutboundParams
from monitor.detect.outbound.runtime import (
    ApprovedPost,
    OutboundRuntime,
    WatchEntry,
    similarity,
)
from monitor.detect.outbound.screen import OutboundScreen

__all__ = ["CHECKS", "ApprovedPost", "CheckParams", "CheckSpec", "Finding", "Hit",
           "OutboundDetector", "OutboundParams", "OutboundRuntime", "OutboundScreen",
           "ScreenResult", "WatchEntry", "check", "severity_of", "similarity"]
