#!/usr/bin/env bash
# What CI needs before the compose tests (tests/compose/, docs/compose.md), from a bare Debian:
#   1. Debian's docker.io (dockerd), docker-compose (v1, the only compose in bookworm) and
#      debootstrap, if missing. Needs root (or sudo) for apt.
#   2. dockerd running: started in the background if `docker info` fails, then polled with a
#      deadline (DOCKERD_WAIT seconds, default 60); its log goes to $DOCKERD_LOG.
#   3. The images: scripts/build-offline-images.sh (base image cached across runs on one machine).
# Safe to run again: each step is skipped when already done. Leaves dockerd running.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/minietcd-dockerd.log}"
log() { echo "ci-docker: $*" >&2; }
start=$SECONDS

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "error: needs root or sudo"; exit 1; }
    SUDO="sudo"
fi

# --- 1. packages --------------------------------------------------------------------------------------
# A docker *client* may already be installed without a daemon, so look for dockerd itself.
# (/usr/sbin is not on every PATH, hence the explicit paths.)
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
missing=()
have dockerd || missing+=(docker.io)
have docker-compose || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
have debootstrap || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
log "packages ready ($((SECONDS - start))s)"

# --- 2. dockerd ---------------------------------------------------------------------------------------
if ! $SUDO docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: dockerd must outlive this script (and CI's shell); it is meant to stay up.
    $SUDO sh -c "PATH=\"\$PATH:/usr/sbin:/sbin\" setsid nohup dockerd >>'$DOCKERD_LOG' 2>&1 < /dev/null &"
    deadline=$((SECONDS + DOCKERD_WAIT))
    until $SUDO docker info >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "error: dockerd not answering after ${DOCKERD_WAIT}s; last lines of $DOCKERD_LOG:"
            $SUDO tail -n 30 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 1
    done
fi
log "dockerd ready ($((SECONDS - start))s)"

# --- 3. images ----------------------------------------------------------------------------------------
bash scripts/build-offline-images.sh
log "done in $((SECONDS - start))s"
