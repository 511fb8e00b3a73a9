"""brand-monitor: a self-hosted crisis and brand-safety monitoring daemon."""

__version__ = "0.1.0"
