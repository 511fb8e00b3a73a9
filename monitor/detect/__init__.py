"""Detectors: turn enriched posts into signals (volume spikes, sentiment shifts, outbound risk).

The volume statistics live in ``countmodel`` (with ``countmodel_stats`` and ``seasonal``).
"""
