"""make-mirror: copy a prefix of one cluster into another and keep it in sync (etcdctl 3.4's
make_mirror_command.go over clientv3/mirror's syncer).

What etcdctl does, and so what this does:

1. The destination client is built from the positional argument and the ``--dest-*`` TLS flags
   (no credentials), then the source client from the global flags.
2. A task prints the running total of keys processed every 30 s (just the number).
3. The source's current revision is read (a linearizable Get of ``foo``), then every key under
   ``--prefix`` is read at that revision, 1000 at a time, and put one by one into the
   destination with the prefix rewritten (``strings.Replace(key, prefix, dest, 1)``: with
   ``--dest-prefix`` the prefix is replaced, with ``--no-dest-prefix`` removed, with neither
   kept).
4. The prefix is watched from that revision + 1; each revision's events (puts and deletes) are
   replayed in one transaction on the destination. Leases and values' metadata are not copied.
5. It runs until killed: SIGINT/SIGTERM end the process at once (etcdctl installs no handler).
   An error ends it with ``Error: ...`` and exit code 1; a compacted watch with etcd's
   "required revision has been compacted"; a watch the server cancels for another reason with
   ``Error: <nil>`` (etcdctl returns a nil error there).

Requests have no deadline (etcdctl uses ``context.TODO()``): an unreachable source is retried
forever while the total, 0, keeps being printed.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass
from typing import Any

from minietcd.client import Client, EventType, Op, WatchCanceledError, prefix_range_end
from minietcd.client.errors import error_message
from minietcdctl.common import EXIT_BAD_ARGS, EXIT_ERROR, Ctl, stdout_write, tls_files
from minietcdctl.flags import Command, ExitError, Flag, Invocation

MIRROR_FLAGS = [
    Flag("prefix", "string", "", "Key-value prefix to mirror"),
    Flag(
        "dest-prefix",
        "string",
        "",
        "destination prefix to mirror a prefix to a different prefix in the destination cluster",
    ),
    Flag("no-dest-prefix", "bool", False, "mirror key-values to the root of the destination cluster"),
    Flag(
        "dest-cert",
        "string",
        "",
        "Identify secure client using this TLS certificate file for the destination cluster",
    ),
    Flag("dest-key", "string", "", "Identify secure client using this TLS key file"),
    Flag(
        "dest-cacert", "string", "", "Verify certificates of TLS enabled secure servers using this CA bundle"
    ),
    Flag("dest-insecure-transport", "bool", True, "Disable transport security for client connections"),
]

#: Keys per Range of the initial copy (clientv3/mirror's batchLimit).
BATCH_LIMIT = 1000
#: Seconds between two lines of the running total. etcdctl's is fixed at 30 s; the environment
#: variable exists only so that tests can see the line without waiting that long.
REPORT_INTERVAL_ENV = "MINIETCDCTL_MIRROR_REPORT_INTERVAL"
REPORT_INTERVAL = 30.0


@dataclass(slots=True)
class Mirror:
    """The prefix rewrite and the running total of one make-mirror run."""

    prefix: bytes
    dest_prefix: bytes
    total: int = 0

    def rewrite(self, key: bytes) -> bytes:
        """Go's ``strings.Replace(key, prefix, dest, 1)`` (an empty prefix inserts ``dest``)."""
        return key.replace(self.prefix, self.dest_prefix, 1)


def _dest_tls(inv: Invocation) -> dict[str, Any]:
    """The destination's TLS options, checked as etcd's transport.TLSInfo.ClientConfig does."""
    out: dict[str, Any] = tls_files(inv["dest-cert"], inv["dest-key"], inv["dest-cacert"])
    if not out and not inv["dest-insecure-transport"]:
        out["tls"] = True
    return out


def _dest_client(inv: Invocation, endpoint: str) -> Client:
    try:
        return Client(
            [endpoint],
            timeout=math.inf,
            dial_timeout=inv["dial-timeout"] or 2.0,
            keepalive_time=max(inv["keepalive-time"], 10.0),
            keepalive_timeout=max(inv["keepalive-timeout"], 1.0),
            **_dest_tls(inv),
        )
    except (ValueError, OSError) as e:
        raise ExitError(EXIT_ERROR, str(e)) from None


def _report_interval() -> float:
    try:
        v = float(os.environ.get(REPORT_INTERVAL_ENV, REPORT_INTERVAL))
    except ValueError:
        return REPORT_INTERVAL
    return v if v > 0 else REPORT_INTERVAL


async def _report(m: Mirror) -> None:
    interval = _report_interval()
    while True:
        await asyncio.sleep(interval)
        stdout_write(f"{m.total}\n")


async def make_mirror_command(inv: Invocation) -> None:
    if len(inv.args) != 1:
        raise ExitError(EXIT_BAD_ARGS, "make-mirror takes one destination argument")
    dest = _dest_client(inv, inv.args[0])
    ctl = Ctl(inv)
    try:
        src = ctl.client()
        m = Mirror(inv["prefix"].encode("utf-8", "surrogateescape"), b"")
        reporter = asyncio.create_task(_report(m))
        try:
            await _mirror(inv, ctl, src, dest, m)
        finally:
            reporter.cancel()
    finally:
        await dest.close()


async def _mirror(inv: Invocation, ctl: Ctl, src: Client, dest: Client, m: Mirror) -> None:
    failure: str | None = None
    rev = 0
    try:
        rev = (await src.get("foo", timeout=math.inf)).header.revision
    except Exception as e:
        failure = error_message(e)
    # etcdctl checks the two flags only once the syncer has its revision.
    dest_prefix: str = inv["dest-prefix"]
    if inv["no-dest-prefix"] and dest_prefix:
        raise ExitError(
            EXIT_BAD_ARGS, "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one"
        )
    if not inv["no-dest-prefix"] and not dest_prefix:
        m.dest_prefix = m.prefix
    else:
        m.dest_prefix = dest_prefix.encode("utf-8", "surrogateescape")
    if failure is not None:
        raise ExitError(EXIT_ERROR, failure)

    # The base: every key under the prefix at ``rev``, one Put each.
    key, end = (m.prefix, prefix_range_end(m.prefix)) if m.prefix else (b"\x00", b"\x00")
    while True:
        resp = await ctl.call(src.get(key, end, limit=BATCH_LIMIT, revision=rev, timeout=math.inf))
        for kv in resp.kvs:
            await ctl.call(dest.put(m.rewrite(kv.key), kv.value, timeout=math.inf))
            m.total += 1
        if not resp.more or not resp.kvs:
            break
        key = resp.kvs[-1].key + b"\x00"

    # The updates: one transaction per source revision.
    watch = src.watch(m.prefix, prefix=True, start_revision=rev + 1, require_leader=False)
    try:
        async for wr in watch:
            ops: list[Op] = []
            last = 0
            for ev in wr.events:
                if last and ev.kv.mod_revision > last:
                    await ctl.call(dest.txn(timeout=math.inf).then(*ops).commit())
                    ops = []
                last = ev.kv.mod_revision
                if ev.type is EventType.DELETE:
                    ops.append(Op.delete(m.rewrite(ev.kv.key)))
                else:
                    ops.append(Op.put(m.rewrite(ev.kv.key), ev.kv.value))
                m.total += 1
            if ops:
                await ctl.call(dest.txn(timeout=math.inf).then(*ops).commit())
    except WatchCanceledError:
        pass  # etcdctl's watch channel closes and makeMirror returns a nil error
    except ExitError:
        raise
    except Exception as e:  # a compacted start revision, or the watch failed
        raise ExitError(EXIT_ERROR, error_message(e)) from None
    finally:
        await watch.aclose()
    raise ExitError(EXIT_ERROR, "<nil>")


def commands() -> list[Command]:
    return [
        Command(
            "make-mirror [options] <destination>",
            "Makes a mirror at the destination etcd cluster",
            make_mirror_command,
            flags=list(MIRROR_FLAGS),
        )
    ]
