# minietcd server image.
#
# The build needs no network: minietcd and every dependency are installed from wheels/ (built on the
# host by scripts/build-offline-images.sh, or by hand with `python3.11 -m pip wheel . -w wheels`).
#
#   BASE_IMAGE  any image with python3 (3.11, as the wheels are cp311) and its venv module.
#               Default: the official slim image, for machines that can pull from a registry.
#               Offline: minietcd-base:bookworm, a debootstrap'd Debian made by the script above.
#
# Runs `minietcd` (etcd's flags) as an unprivileged user (uid 10001); data goes under /var/lib/minietcd.
# The image also carries /toxiproxy, a stand-in for ghcr.io/shopify/toxiproxy (see below).

ARG BASE_IMAGE=python:3.11-slim

# --- build stage: a venv with minietcd installed from the wheels, nothing else --------------------
FROM ${BASE_IMAGE} AS install
# Lets scripts/build-offline-images.sh find (and prune) the stage images the classic builder keeps.
LABEL org.minietcd.stage=install
# --no-index: fail rather than reach for PyPI if a wheel is missing.
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/minietcd \
 && /opt/minietcd/bin/python3 -m pip install --no-cache-dir --no-index --disable-pip-version-check \
        --find-links /tmp/wheels minietcd \
 && /opt/minietcd/bin/minietcd --version \
 && /opt/minietcd/bin/minietcdctl version

# --- runtime stage: the base plus the venv (the wheels stay behind in the build stage) -------------
FROM ${BASE_IMAGE}
LABEL org.minietcd.stage=runtime
COPY --from=install /opt/minietcd /opt/minietcd
# The venv first on PATH: `minietcd`, and `python3` with minietcd importable (health checks, tools).
ENV PATH=/opt/minietcd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8
# A fixed uid so volume ownership is predictable; the data dir is created here, owned by that user,
# so a fresh named volume mounted on it starts out writable by minietcd.
# /toxiproxy: the lab's Toxiproxy-compatible fault proxy behind the path and flags of the official
# Toxiproxy image's entrypoint, so a compose file can switch between the two by image name alone.
RUN useradd --system --uid 10001 --home-dir /var/lib/minietcd --shell /usr/sbin/nologin minietcd \
 && mkdir -p /var/lib/minietcd \
 && chown minietcd:minietcd /var/lib/minietcd \
 && printf '%s\n' '#!/bin/sh' \
        '# Stand-in for ghcr.io/shopify/toxiproxy: same path, same toxiproxy-server flags.' \
        'exec python3 -m minietcd.lab.faultproxy "$@"' > /toxiproxy \
 && chmod 0755 /toxiproxy
USER minietcd
WORKDIR /var/lib/minietcd
# No VOLUME: it would give every container of this image (the fault proxy too) an anonymous volume
# to clean up. Mount one yourself: docker run -v minietcd-data:/var/lib/minietcd ... (compose does).
# client, peer, metrics (/health, /metrics, /version)
EXPOSE 2379 2380 2381

# Healthy = /health on the metrics listener answers 200 (etcd's rule: a leader and no alarm).
# python3 rather than curl, which the image does not have. MINIETCD_HEALTH_URL overrides the URL.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('MINIETCD_HEALTH_URL', 'http://127.0.0.1:2381/health'), timeout=2)"]

ENTRYPOINT ["minietcd"]
# Default: a one-member cluster reachable from outside the container (docker run -p 2379:2379 ...).
# Any arguments given to `docker run` / compose `command:` replace these.
CMD ["--name", "default", \
     "--data-dir", "/var/lib/minietcd/default.etcd", \
     "--listen-client-urls", "http://0.0.0.0:2379", \
     "--advertise-client-urls", "http://127.0.0.1:2379", \
     "--listen-peer-urls", "http://0.0.0.0:2380", \
     "--initial-advertise-peer-urls", "http://127.0.0.1:2380", \
     "--initial-cluster", "default=http://127.0.0.1:2380", \
     "--listen-metrics-urls", "http://0.0.0.0:2381"]
