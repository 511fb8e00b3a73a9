#!/usr/bin/env bash
# Debian's PostgreSQL server and nats-server for the store contract suite and the
# cluster tests (the tests start their own servers in temporary folders).
# Idempotent and quiet: does nothing when both are installed. Needs root and apt-get;
# without them those tests skip and say why.
set -u
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
if have_pg && command -v nats-server >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-cluster-tools: need root and apt-get to install postgresql and nats-server" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq postgresql nats-server >/dev/null 2>&1 || {
    echo "install-cluster-tools: apt-get install postgresql nats-server failed" >&2
    exit 1
}
have_pg && command -v nats-server >/dev/null 2>&1
