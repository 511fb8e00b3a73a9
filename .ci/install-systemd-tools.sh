#!/usr/bin/env bash
# Install systemd-analyze (Debian package "systemd") for tests/test_systemd.py.
# Idempotent and quiet: does nothing when systemd-analyze is already on PATH;
# otherwise runs apt-get update once, then installs, printing apt's log only on
# failure.  systemd does not need to be PID 1 for `systemd-analyze verify` or
# `systemd-analyze security --offline=true`.
set -euo pipefail

if command -v systemd-analyze >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-systemd-tools: apt-get not found; cannot install systemd-analyze" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "install-systemd-tools: not root and no sudo; cannot install systemd-analyze" >&2
        exit 1
    fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive

run() {
    if ! "${SUDO[@]}" "$@" >"$log" 2>&1; then
        echo "install-systemd-tools: '$*' failed:" >&2
        cat "$log" >&2
        exit 1
    fi
}

run apt-get update -qq
run apt-get install -y -qq --no-install-recommends systemd

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "install-systemd-tools: systemd installed but systemd-analyze is not on PATH" >&2
    exit 1
fi
