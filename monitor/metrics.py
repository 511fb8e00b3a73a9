"""Prometheus metrics, on a registry per daemon instance (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.posts = Counter("brandmon_posts_total", "Posts accepted into the pipeline",
                             ["source", "kind"], registry=r)
        self.duplicates = Counter("brandmon_posts_duplicate_total",
                                  "Posts dropped as already seen", ["source"], registry=r)
        self.malformed = Counter("brandmon_posts_malformed_total",
                                 "Malformed posts counted and skipped", ["source"], registry=r)
        self.unmatched = Counter("brandmon_posts_unmatched_total",
                                 "Posts that matched no configured brand", ["source"], registry=r)
        self.late = Counter("brandmon_posts_late_total",
                            "Posts older than the open bucket (counted, not re-bucketed)",
                            ["brand"], registry=r)
        self.rejected_time = Counter(
            "brandmon_posts_time_rejected_total",
            "Posts stored but kept from the detectors: dated in the future beyond "
            "max_future, or older than the raw-post retention", ["source", "reason"],
            registry=r)
        self.signals = Counter("brandmon_signals_total", "Signals raised by detectors",
                               ["rule", "state"], registry=r)
        self.alerts = Counter("brandmon_alerts_total", "Alerts created", ["rule", "severity",
                                                                           "state"], registry=r)
        self.suppressed = Counter("brandmon_alerts_suppressed_total",
                                  "Signals not notified (dedup or cooldown)", ["rule", "reason"],
                                  registry=r)
        self.deliveries = Counter("brandmon_deliveries_total", "Notification attempts",
                                  ["channel", "result"], registry=r)
        self.outbox = Gauge("brandmon_outbox_items", "Outbox items by status", ["status"],
                            registry=r)
        self.queue_depth = Gauge("brandmon_queue_depth", "Posts waiting for the engine",
                                 registry=r)
        self.queue_lag = Gauge("brandmon_queue_lag_seconds",
                               "Age of the oldest post waiting for the engine", registry=r)
        self.ingest_refused = Counter("brandmon_ingest_refused_total",
                                      "POST /ingest batches refused with 429 (queue full)",
                                      registry=r)
        self.failed = Counter("brandmon_posts_failed_total",
                              "Posts the engine could not process (logged and skipped)",
                              ["source"], registry=r)
        self.loop_lag = Gauge("brandmon_loop_lag_seconds",
                              "Longest event-loop stall seen in the last probe interval",
                              registry=r)
        self.http_refused = Counter("brandmon_http_connections_refused_total",
                                    "Connections over http.max_connections (503)",
                                    registry=r)
        self.queue_dropped = Counter("brandmon_queue_overflow_total",
                                     "Times a source waited because the queue was full",
                                     ["source"], registry=r)
        self.source_up = Gauge("brandmon_source_up", "1 when a source is healthy", ["source"],
                               registry=r)
        self.rules_loaded = Gauge("brandmon_rules_loaded", "Rules in the active rule set",
                                  registry=r)
        self.reloads = Counter("brandmon_rule_reloads_total", "Rule reloads", ["result"],
                               registry=r)
        self.latency = Histogram("brandmon_post_latency_seconds",
                                 "Time to process one post through the engine", registry=r,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.5))
