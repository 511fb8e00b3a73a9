"""The web dashboard, served by the daemon's own HTTP server under ``/ui``.

Pulse (mentions with the expected band, negative share, share of voice, terms, top
posts), Alerts (inbox, explanation, timeline, ack, silences), Outbound review (flagged
posts, ledger, watchlist) and Health and rules (sources, outbox, rules, what-if
backtest). Registered by :class:`~monitor.web.routes.WebRoutes` (``add_to(app)``).
"""

from monitor.web.routes import WebRoutes

__all__ = ["WebRoutes"]
