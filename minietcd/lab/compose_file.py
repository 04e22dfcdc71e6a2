"""The docker compose file of a minietcd cluster of SIZE members (1..9), peers via Toxiproxy.

Compose files have no loops, and every member's ``--initial-cluster`` must list exactly the SIZE
members, so the file is generated: by ``scripts/compose-cluster.py`` (whose output for 3 is the
top-level ``docker-compose.yml``) and by ``minietcd-lab --compose up`` (``minietcd.lab.compose``).
The output works with both the docker compose v2 plugin and Debian's docker-compose 1.29
(Compose Specification, no ``version:`` key, nothing newer than both understand). See
docs/compose.md.

Services:

* ``n1``..``nN``: one minietcd member each, its own named volume ``nI-data``, network alias ``nI``,
  client port 2379 published on 127.0.0.1:2I379 and metrics (/health) on 127.0.0.1:2I381 (shifted
  by the port offset), healthy when /health answers 200.
* ``toxiproxy``: ``ghcr.io/shopify/toxiproxy`` unless ``$TOXIPROXY_IMAGE`` names another image with a
  ``/toxiproxy`` entrypoint; the minietcd image has one (the lab's fault proxy), for machines
  without a registry. API published on 127.0.0.1:28474.
* ``toxiproxy-links``: one-shot; creates proxy ``nI-nJ`` (listening on toxiproxy:200IJ, upstream
  nJ:2380) for every ordered pair. Each member dials peer J through its own proxy ``nI-nJ`` via
  ``MINIETCD_LAB_PEER_ROUTES`` (minietcd.lab.links explains the scheme), so disabling a proxy or
  adding a toxic to it acts on the traffic I sends to J only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

MAX_SIZE = 9
DEFAULT_SIZE = 3
DEFAULT_IMAGE = "minietcd:latest"
DEFAULT_TOXIPROXY_IMAGE = "ghcr.io/shopify/toxiproxy:2.9.0"
IMAGE = f"${{MINIETCD_IMAGE:-{DEFAULT_IMAGE}}}"
TOXIPROXY_IMAGE = f"${{TOXIPROXY_IMAGE:-{DEFAULT_TOXIPROXY_IMAGE}}}"
CLIENT_PORT = 2379
PEER_PORT = 2380
METRICS_PORT = 2381
TOXIPROXY_API_PORT = 8474


def peer_url(i: int) -> str:
    return f"http://n{i}:{PEER_PORT}"


def link_port(src: int, dst: int) -> int:
    """Where proxy nSRC-nDST listens inside the toxiproxy container: 200<src><dst>."""
    return 20000 + 10 * src + dst


def host_ports(i: int, offset: int) -> tuple[int, int]:
    """Member i's client and metrics ports on the host: 2<i>379 and 2<i>381, plus the offset."""
    return 20000 + 1000 * i + CLIENT_PORT % 1000 + offset, 20000 + 1000 * i + METRICS_PORT % 1000 + offset


def toxiproxy_host_port(offset: int) -> int:
    return 20000 + TOXIPROXY_API_PORT + offset


def host_ports_of_cluster(size: int, offset: int) -> list[int]:
    """Every host port a SIZE-member file publishes: the members' and Toxiproxy's API."""
    return [p for i in range(1, size + 1) for p in host_ports(i, offset)] + [toxiproxy_host_port(offset)]


def max_port_offset() -> int:
    """The largest offset that keeps every published port of the largest cluster below 65536."""
    return 65535 - max(*host_ports(MAX_SIZE, 0), toxiproxy_host_port(0))


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML); compose interpolates ``$`` in it."""
    return json.dumps(text)


def _sq(text: str) -> str:
    """A YAML single-quoted scalar: no escapes but '' for ', so JSON inside stays readable."""
    return "'" + text.replace("'", "''") + "'"


# The one-shot job that creates the link proxies. Plain Python (runs in the minietcd image); it
# retries until the proxy's API is up. No "$" anywhere: compose would interpolate it.
_LINKS_JOB = """\
import json, sys, time, urllib.request
size = {size}
proxies = [
    {{"name": f"n{{i}}-n{{j}}", "listen": f"0.0.0.0:{{20000 + 10 * i + j}}",
     "upstream": f"n{{j}}:{peer_port}", "enabled": True}}
    for i in range(1, size + 1) for j in range(1, size + 1) if i != j
]
body = json.dumps(proxies).encode()
deadline = time.monotonic() + 120
while True:
    request = urllib.request.Request(
        "http://toxiproxy:{api_port}/populate", data=body, method="POST",
        headers={{"Content-Type": "application/json"}})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(f"toxiproxy-links: {{len(proxies)}} proxies, HTTP {{response.status}}")
            break
    except OSError as e:
        if time.monotonic() > deadline:
            sys.exit(f"toxiproxy-links: toxiproxy:{api_port} not usable: {{e}}")
        time.sleep(0.5)
"""

_HEALTHCHECK = (
    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/health', timeout=2)"
)


def token(size: int) -> str:
    """The ``--initial-cluster-token`` of a SIZE-member file (member IDs derive from it)."""
    return f"minietcd-compose-{size}"


def render(
    size: int,
    port_offset: int = 0,
    extra_flags: Sequence[str] = (),
    member_flags: Mapping[int, Sequence[str]] | None = None,
) -> str:
    """The compose file for SIZE members; ``extra_flags`` are added to every member's command
    (``minietcd-lab --compose up`` passes its timings this way), ``member_flags[i]`` after them
    to member i's only (a replaced member joins with ``--initial-cluster-state=existing``: the
    last value of a flag wins, as with Go's flag package)."""
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"size must be 1..{MAX_SIZE}, not {size}")
    initial_cluster = ",".join(f"n{i}={peer_url(i)}" for i in range(1, size + 1))
    out: list[str] = []
    add = out.append
    add(f"# minietcd: a {size}-member cluster, peer traffic through Toxiproxy (docs/compose.md).")
    add(f"# GENERATED by `python3 scripts/compose-cluster.py --size {size}`: edit the script, not this file.")
    add("# Another size (1..9): python3 scripts/compose-cluster.py --size N -o docker-compose.sizeN.yml")
    add("# Images: scripts/build-offline-images.sh builds minietcd:latest without a registry.")
    add("# No registry for Toxiproxy either: TOXIPROXY_IMAGE=minietcd:latest (the lab's fault proxy).")
    add("")
    add("x-member: &member")
    add(f"  image: {_q(IMAGE)}")
    add("  restart: unless-stopped")
    add("  healthcheck:")
    add(f'    test: ["CMD", "python3", "-c", {_q(_HEALTHCHECK)}]')
    add("    interval: 2s")
    add("    timeout: 3s")
    add("    retries: 3")
    add("    start_period: 30s")
    add("  depends_on:")
    add("    toxiproxy-links:")
    add("      condition: service_completed_successfully")
    add("")
    add("services:")
    add("  toxiproxy:")
    add(f"    image: {_q(TOXIPROXY_IMAGE)}")
    add("    # The official image's entrypoint; the minietcd image has a stand-in at the same path.")
    add('    entrypoint: ["/toxiproxy"]')
    add(f'    command: ["-host=0.0.0.0", "-port={TOXIPROXY_API_PORT}"]')
    add("    restart: unless-stopped")
    add("    environment:")
    add("      # The official image has no health check (nor a shell to run one); the minietcd image's")
    add("      # HEALTHCHECK probes this URL, so with it the proxy counts as healthy once its API answers.")
    add(f"      MINIETCD_HEALTH_URL: http://127.0.0.1:{TOXIPROXY_API_PORT}/version")
    add("    ports:")
    add(f'      - "127.0.0.1:{toxiproxy_host_port(port_offset)}:{TOXIPROXY_API_PORT}"')
    add("    networks:")
    add("      minietcd:")
    add("        aliases: [toxiproxy]")
    add("")
    add("  # One-shot: proxy nI-nJ (toxiproxy:200IJ -> nJ:2380) for every ordered pair of members.")
    add("  # Run it again after restarting toxiproxy: docker compose up -d toxiproxy-links")
    add("  toxiproxy-links:")
    add(f"    image: {_q(IMAGE)}")
    add('    entrypoint: ["python3", "-c"]')
    add("    command:")
    add("      - |")
    job = _LINKS_JOB.format(size=size, peer_port=PEER_PORT, api_port=TOXIPROXY_API_PORT)
    out.extend(f"        {line}" if line else "" for line in job.splitlines())
    add('    restart: "no"')
    add("    healthcheck:")
    add("      disable: true")
    add("    depends_on: [toxiproxy]")
    add("    networks: [minietcd]")
    for i in range(1, size + 1):
        routes = {peer_url(j): f"http://toxiproxy:{link_port(i, j)}" for j in range(1, size + 1) if j != i}
        client, metrics = host_ports(i, port_offset)
        add("")
        add(f"  n{i}:")
        add("    <<: *member")
        add("    command:")
        for flag in (
            f"--name=n{i}",
            f"--data-dir=/var/lib/minietcd/n{i}.etcd",
            f"--listen-client-urls=http://0.0.0.0:{CLIENT_PORT}",
            f"--advertise-client-urls=http://n{i}:{CLIENT_PORT}",
            f"--listen-peer-urls=http://0.0.0.0:{PEER_PORT}",
            f"--initial-advertise-peer-urls={peer_url(i)}",
            f"--listen-metrics-urls=http://0.0.0.0:{METRICS_PORT}",
            f"--initial-cluster={initial_cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={token(size)}",
            *extra_flags,
            *(member_flags or {}).get(i, ()),
        ):
            add(f"      - {_q(flag)}")
        add("    environment:")
        if routes:
            add(f"      # Dial peer J through proxy n{i}-nJ (lab hook read by minietcd.server.transport).")
            add(f"      MINIETCD_LAB_PEER_ROUTES: {_sq(json.dumps(routes, sort_keys=True))}")
        else:
            add('      MINIETCD_LAB_PEER_ROUTES: ""  # a single member has no peers')
        add("    volumes:")
        add(f"      - n{i}-data:/var/lib/minietcd")
        add("    ports:")
        add(f'      - "127.0.0.1:{client}:{CLIENT_PORT}"')
        add(f'      - "127.0.0.1:{metrics}:{METRICS_PORT}"')
        add("    networks:")
        add("      minietcd:")
        add(f"        aliases: [n{i}]")
    add("")
    add("networks:")
    add("  minietcd: {}")
    add("")
    add("volumes:")
    for i in range(1, size + 1):
        add(f"  n{i}-data: {{}}")
    return "\n".join(out) + "\n"
