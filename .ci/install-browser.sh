#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the dashboard's browser tests (tests/web).
# Idempotent and quiet: does nothing when both are installed. Needs root and apt-get;
# without them the browser tests skip and say why.
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: need root and apt-get to install chromium and chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || {
    echo "install-browser: apt-get install chromium chromium-driver failed" >&2
    exit 1
}
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
