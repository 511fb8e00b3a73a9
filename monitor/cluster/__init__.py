"""Beyond one process (docs/scaling.md): leases on the shared PostgreSQL store (one
active daemon; partition owners), roles (ingest, worker, notify) and the NATS
JetStream stream of posts partitioned by brand."""
