#!/usr/bin/env bash
# One-time set-up of a fresh Debian/Ubuntu machine for developing and testing minietcd.
#  - Python packages: minietcd itself (editable) with its dev tools.
#  - Debian packages: real etcd 3.4 + etcdctl, used by the side-by-side compatibility tests;
#    etcd-discovery and dnsmasq-base for the discovery tests; chromium (and chromium-driver),
#    the browser the live view's tests drive through Playwright (never a browser download:
#    Playwright launches /usr/bin/chromium); patroni and postgresql for the Patroni failover test
#    (tests/compat/test_patroni.py, through etcd's JSON gateway).
# Safe to run again. Needs root (or sudo) for apt; without it, the apt step is skipped and the
# tests that need etcd skip with a reason (CI installs them and fails instead).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    # etcd-discovery (the discovery.etcd.io server) and dnsmasq serve the discovery tests
    # (tests/cluster/test_discovery_v2.py, test_discovery_srv.py); chromium the live view's
    # browser tests (tests/lab/test_web.py, test_lessons.py); golang-etcd-server-dev is etcd 3.4's
    # Go source, which tests compare our protos and error table with (tests/etcd_source.py).
    if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1 \
        || [ ! -x /usr/bin/discovery.etcd.io ] || [ ! -x /usr/sbin/dnsmasq ] \
        || [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null 2>&1 \
        || [ ! -d /usr/share/gocode/src/go.etcd.io/etcd ] \
        || ! command -v patroni >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq etcd-server etcd-client etcd-discovery dnsmasq-base \
            chromium chromium-driver golang-etcd-server-dev patroni postgresql >/dev/null
    fi
else
    echo "setup: not root and no sudo: skipping apt packages (etcd-server, etcd-client, etcd-discovery," \
        "dnsmasq-base, chromium, chromium-driver, golang-etcd-server-dev, patroni, postgresql)" >&2
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
# The third-party etcd clients the compatibility tests drive (they run as subprocesses: their
# generated protobuf modules clash with ours inside one process).
python3 -m pip install -q --disable-pip-version-check 'etcd3==0.12.0' 'aetcd==1.0.0'
echo "setup: done"
