#!/usr/bin/env bash
# Build minietcd's Docker images without an image registry (no `FROM python:...` pull).
#
#   1. Base image minietcd-base:bookworm: a Debian bookworm "minbase" made by debootstrap, with
#      python3 and python3-venv, from the same Debian mirror apt uses here, then `docker import`ed.
#      Skipped when the image already exists (it only changes with Debian), unless --rebuild-base.
#   2. wheels/: minietcd and all its dependencies as wheels (`pip wheel`, PyPI via pip as usual),
#      so the Docker build itself needs no network.
#   3. minietcd:latest from the top-level Dockerfile with --build-arg BASE_IMAGE=<the base>.
#
# Usage: scripts/build-offline-images.sh [--rebuild-base] [--base-image IMAGE]
#   --rebuild-base      debootstrap the base again even if it exists
#   --base-image IMAGE  build on IMAGE instead (e.g. python:3.11-slim where a registry is reachable);
#                       no debootstrap then
# Environment:
#   MINIETCD_IMAGE   tag of the result (default minietcd:latest)
#   DEBIAN_MIRROR    mirror for debootstrap (default: the first bookworm mirror in apt's sources)
#   PYTHON           Python 3.11 used to build the wheels (default python3); the images run 3.11,
#                    so the compiled wheels (grpcio, uvloop, ...) must be cp311
# Needs: docker (running daemon), root or sudo for debootstrap, debootstrap (only for step 1).
# Prints how long each step took. scripts/ci-docker.sh installs the tools and starts dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_TAG="minietcd-base:bookworm"
IMAGE="${MINIETCD_IMAGE:-minietcd:latest}"
PYTHON="${PYTHON:-python3}"
SUITE="bookworm"
base_image=""
rebuild_base=0

while [ $# -gt 0 ]; do
    case "$1" in
        --rebuild-base) rebuild_base=1 ;;
        --base-image) base_image="${2:?--base-image needs an image}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-offline-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "build-offline-images: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Step timings, printed at the end (CI logs show where the time goes).
timings=()
step_start=0
start_step() { step_start=$SECONDS; log "$1"; }
end_step() { timings+=("$1: $((SECONDS - step_start))s"); }

command -v docker >/dev/null 2>&1 || die "docker not found (scripts/ci-docker.sh installs it)"
docker info >/dev/null 2>&1 || die "docker daemon not reachable (start dockerd; scripts/ci-docker.sh does)"

# Docker >= 23 clients build with BuildKit, which needs the buildx plugin; Debian's docker.io has
# none, so fall back to the classic builder there (it handles this Dockerfile just as well).
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# The first mirror apt uses for the plain bookworm suite, from deb822 .sources files or one-line
# sources.list entries: debootstrap then fetches exactly what apt-get would.
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        # deb822 stanzas: remember URIs and Suites, emit the URI when a stanza lists the suite.
        awk -v suite="$SUITE" '
            function flush() { if (uri != "" && (" " suites " ") ~ (" " suite " ")) { print uri; exit } uri = ""; suites = "" }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        # deb [options] URI suite components...
        awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++; if ($(i + 1) == suite) { print $i; exit } }' "$f"
    done
}

# --- 1. base image ---------------------------------------------------------------------------------
rootfs=""
cleanup_rootfs() {
    [ -n "$rootfs" ] && [ -d "$rootfs" ] || return 0
    # debootstrap mounts /proc (and maybe /sys) inside the tree; if it died half-way they are still
    # mounted, and rm -rf must never walk into them. Unmount deepest first, then remove without
    # crossing file systems.
    local m
    { grep -o " $rootfs/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do
        $SUDO umount -l "$m" || true
    done
    $SUDO rm -rf --one-file-system "$rootfs"
}
trap cleanup_rootfs EXIT

if [ -n "$base_image" ]; then
    log "base: using $base_image as given"
elif [ "$rebuild_base" = 0 ] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    base_image="$BASE_TAG"
    log "base: $BASE_TAG exists, not rebuilding (--rebuild-base to force)"
else
    base_image="$BASE_TAG"
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] \
        || die "debootstrap not found (apt-get install debootstrap; scripts/ci-docker.sh does)"
    mirror="${DEBIAN_MIRROR:-$(apt_mirror | head -n1)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    start_step "base: debootstrap --variant=minbase $SUITE from $mirror"
    # /var/tmp, not /tmp: the tree is a few hundred MB and /tmp may be a small tmpfs.
    rootfs="$(mktemp -d /var/tmp/minietcd-rootfs.XXXXXX)"
    $SUDO env PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase --include=python3,python3-venv \
        "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; die "debootstrap failed (full log: $rootfs.log)"; }
    rm -f "$rootfs.log"
    # Downloaded .debs and package lists are not needed in the image (~25 MB).
    $SUDO find "$rootfs/var/cache/apt/archives" "$rootfs/var/lib/apt/lists" -type f -delete
    # --numeric-owner keeps the image's uids even where the host maps names differently; proc, sys
    # and dev are provided by Docker at run time.
    $SUDO tar -C "$rootfs" --numeric-owner --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . \
        | docker import \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["python3"]' \
            --message "debootstrap --variant=minbase --include=python3,python3-venv $SUITE" \
            - "$BASE_TAG" >/dev/null
    cleanup_rootfs
    rootfs=""
    end_step "base image (debootstrap + import)"
fi

# --- 2. wheels ---------------------------------------------------------------------------------------
start_step "wheels: minietcd and its dependencies into wheels/"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$PYTHON is not Python 3.11; the images run 3.11, so set PYTHON=python3.11"
# Build minietcd from a clean copy of the project's files: an in-tree build reuses build/lib, which
# keeps modules deleted since, and they would end up in the wheel.
src="$(mktemp -d)"
trap 'cleanup_rootfs; rm -rf "$src"' EXIT
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and new (not ignored) files, as they are in the work tree.
    git ls-files -z --cached --others --exclude-standard -- . ':!wheels' \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -c | tar -C "$src" -x
else
    tar --exclude=./wheels --exclude=./build --exclude='*.egg-info' -c . | tar -C "$src" -x
fi
# A fresh directory each time: a stale minietcd wheel of the same version must not be picked.
rm -rf wheels
mkdir wheels
# SOURCE_DATE_EPOCH pins the timestamps inside the wheels built here, so unchanged sources give
# byte-identical wheels and Docker's layer cache skips the install step on the next build.
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || echo 315532800)" \
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir wheels "$src"
log "wheels: $(find wheels -name '*.whl' | wc -l) wheels"
end_step "wheels"

# --- 3. minietcd image ------------------------------------------------------------------------------
start_step "image: docker build -t $IMAGE --build-arg BASE_IMAGE=$base_image ."
docker build --quiet --build-arg "BASE_IMAGE=$base_image" -t "$IMAGE" . >/dev/null
# Each rebuild leaves untagged images behind: the previous $IMAGE, and the install stage (~300 MB)
# that the classic builder keeps as layer cache. Keep only the newest install stage (the next
# build of the same wheels reuses it); images still used by a container are left alone.
stale="$(docker images --quiet --filter dangling=true --filter label=org.minietcd.stage=install | tail -n +2)
$(docker images --quiet --filter dangling=true --filter label=org.minietcd.stage=runtime)"
if [ -n "${stale//[[:space:]]/}" ]; then
    # shellcheck disable=SC2086  # one image id per word
    docker rmi $stale >/dev/null 2>&1 || true
fi
end_step "image"

log "done: $IMAGE (base $base_image)"
for t in "${timings[@]}"; do log "  $t"; done
