"""bench: etcd's benchmark tool (``tools/benchmark``) as a minietcdctl command.

    minietcdctl --endpoints=... bench put --clients 64 --conns 8 --total 20000 --val-size 256
    minietcdctl bench range foo --consistency s --total 10000
    minietcdctl bench txn-put --txn-ops 4 --key-space-size 1000
    minietcdctl bench watch-latency --clients 10 --put-total 200
    minietcdctl bench lease-keepalive --clients 16 --total 5000

Same sub-commands, flags and report as etcd 3.4's benchmark (Summary, response time histogram,
latency distribution, error distribution), a progress bar on stderr, and minietcdctl's global
endpoint, TLS and user flags. The load goes through raw gRPC stubs (``minietcd.bench``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from minietcd.api.etcdserverpb import rpc_pb2
from minietcd.bench import workloads
from minietcd.bench.pool import DialError, Pool, Target, open_pool
from minietcd.bench.progress import Progress
from minietcd.bench.ratelimit import Limiter
from minietcd.bench.report import DEFAULT_PRECISION, render
from minietcd.bench.runner import Budget, Recorder, Request, error_text, run_clients
from minietcd.client._connection import TLSConfig
from minietcdctl.common import EXIT_ERROR, Ctl
from minietcdctl.flags import Command, ExitError, Flag, Invocation
from minietcdctl.printers import write

BENCH_FLAGS = [
    Flag("clients", "uint", 1, "Total number of gRPC clients"),
    Flag("conns", "uint", 1, "Total number of gRPC connections"),
    Flag("precise", "bool", False, "use full floating point precision"),
]


def _rate_flag(what: str) -> Flag:
    return Flag("rate", "int", 0, f"Maximum {what} per second (0 is no limit)")


def _key_flags(what: str, key_size: int = 8, val_size: int = 8) -> list[Flag]:
    return [
        Flag("key-size", "int", key_size, f"Key size of {what}"),
        Flag("val-size", "int", val_size, f"Value size of {what}"),
    ]


def _limiter(rate: int, burst: int = 1) -> Limiter | None:
    return Limiter(rate, burst) if rate > 0 else None


async def connect(ctl: Ctl, conns: int) -> Pool:
    """``conns`` raw connections to the endpoints of the global flags (TLS, user)."""
    opts = ctl.connection_options()
    tls = TLSConfig(
        ca_file=opts.get("ca_file"), cert_file=opts.get("cert_file"), key_file=opts.get("key_file"),
        force=bool(opts.get("tls")),
    )  # fmt: skip
    target = Target(
        ctl.endpoints, tls, opts.get("username", ""), opts.get("password", ""), ctl.inv["dial-timeout"] or 2.0
    )
    try:
        return await open_pool(target, conns)
    except DialError as e:
        raise ExitError(EXIT_ERROR, f"dial error: {e}") from None
    except ValueError as e:
        raise ExitError(EXIT_ERROR, str(e)) from None
    except Exception as e:
        raise ExitError(EXIT_ERROR, error_text(e)) from None


def _sizes(inv: Invocation) -> tuple[int, int]:
    clients, conns = inv["clients"], inv["conns"]
    if clients < 1 or conns < 1:
        raise ExitError(EXIT_ERROR, "--clients and --conns must be at least 1")
    return clients, conns


def _positive(inv: Invocation, *names: str) -> None:
    for name in names:
        if inv[name] <= 0:
            raise ExitError(EXIT_ERROR, f"expected positive --{name}, got ({inv[name]})")


def _report(inv: Invocation, rec: Recorder) -> None:
    """Print etcd's report (``fmt.Println(<-rc)``)."""
    write(render(rec.stats(), "g" if inv["precise"] else DEFAULT_PRECISION) + "\n")


Build = Callable[[Pool, int], Awaitable[list[Request]]]
Teardown = Callable[[], Awaitable[None]]


async def _closed_loop(
    inv: Invocation, total: int, rate: int, build: Build, teardown: Teardown | None = None
) -> None:
    """Connect, build each client's sender, run ``total`` requests at most ``rate``/s, tear
    down (before the connections close), report."""
    clients, conns = _sizes(inv)
    ctl = Ctl(inv)
    pool = await connect(ctl, conns)
    try:
        senders = await build(pool, clients)
        progress = Progress(total).start()
        rec = await run_clients(senders, Budget(total), _limiter(rate), progress)
        await progress.finish()
    finally:
        if teardown is not None:
            await teardown()
        await pool.close()
    _report(inv, rec)


def _key_source(inv: Invocation) -> workloads.KeySource:
    _positive(inv, "key-size", "key-space-size")
    try:
        workloads.check_key_space(inv["key-size"], inv["key-space-size"])
    except ValueError as e:
        raise ExitError(EXIT_ERROR, str(e)) from None
    return workloads.KeySource(inv["key-space-size"], inv.values.get("sequential-keys", False))


async def put_command(inv: Invocation) -> None:
    keys = _key_source(inv)

    async def build(pool: Pool, clients: int) -> list[Request]:
        return workloads.put_requests(pool, clients, inv["key-size"], inv["val-size"], keys)

    await _closed_loop(inv, inv["total"], inv["rate"], build)


async def range_command(inv: Invocation) -> None:
    if not 1 <= len(inv.args) <= 2:
        raise ExitError(EXIT_ERROR, "bench range needs a key and an optional end-range")
    consistency = inv["consistency"]
    if consistency not in ("l", "s"):
        raise ExitError(EXIT_ERROR, f'unknown consistency flag "{consistency}"')
    key = inv.args[0].encode()
    end = inv.args[1].encode() if len(inv.args) == 2 else b""
    req = rpc_pb2.RangeRequest(key=key, range_end=end, serializable=consistency == "s")
    req.limit, req.count_only = inv["limit"], inv["count-only"]

    async def build(pool: Pool, clients: int) -> list[Request]:
        return workloads.range_requests(pool, clients, req)

    await _closed_loop(inv, inv["total"], inv["rate"], build)


async def txn_put_command(inv: Invocation) -> None:
    _positive(inv, "txn-ops")
    _key_source(inv)

    async def build(pool: Pool, clients: int) -> list[Request]:
        return workloads.txn_put_requests(
            pool, clients, inv["key-size"], inv["val-size"], inv["key-space-size"], inv["txn-ops"]
        )

    await _closed_loop(inv, inv["total"], inv["rate"], build)


async def lease_keepalive_command(inv: Invocation) -> None:
    keepalives: list[workloads.KeepAlives] = []

    async def build(pool: Pool, clients: int) -> list[Request]:
        keepalives.append(workloads.KeepAlives(pool))
        try:
            return await keepalives[0].open(clients)
        except Exception as e:
            raise ExitError(EXIT_ERROR, error_text(e)) from None

    async def teardown() -> None:
        for ka in keepalives:
            await ka.close()

    await _closed_loop(inv, inv["total"], 0, build, teardown)


async def watch_latency_command(inv: Invocation) -> None:
    clients, conns = _sizes(inv)
    total = inv["total"] if "total" in inv.changed else inv["put-total"]
    _positive(inv, "put-rate", "key-size")
    ctl = Ctl(inv)
    pool = await connect(ctl, conns)
    progress = Progress(total).start()
    try:
        rate = inv["put-rate"]
        rec = await workloads.watch_latency(
            pool, clients, total, Limiter(rate, rate), inv["key-size"], inv["val-size"], progress
        )
    except workloads.WorkloadError as e:
        raise ExitError(EXIT_ERROR, str(e)) from None
    finally:
        await progress.finish()
        await pool.close()
    _report(inv, rec)


def commands() -> list[Command]:
    group = Command(
        "bench <subcommand>",
        "Benchmark etcd with the load of etcd's benchmark tool",
        long="Sends load through raw gRPC connections (--conns), shared by --clients concurrent\n"
        "clients, and prints etcd's benchmark report. A progress bar is drawn on stderr.",
        persistent=list(BENCH_FLAGS),
        hidden=True,  # not an etcdctl command: `minietcdctl --help` stays etcdctl's
    )
    group.add(
        Command("put", "Benchmark put", put_command, flags=[
            *_key_flags("put request"), _rate_flag("puts"),
            Flag("total", "int", 10000, "Total number of put requests"),
            Flag("key-space-size", "int", 1, "Maximum possible keys"),
            Flag("sequential-keys", "bool", False, "Use sequential keys"),
        ]),
        Command("range key [end-range]", "Benchmark range", range_command, flags=[
            _rate_flag("range requests"),
            Flag("total", "int", 10000, "Total number of range requests"),
            Flag("consistency", "string", "l", "Linearizable(l) or Serializable(s)"),
            Flag("limit", "int", 0, "Maximum number of results to return from range request (0 is no limit)"),
            Flag("count-only", "bool", False, "Only returns the count of keys"),
        ]),
        Command("txn-put", "Benchmark txn-put", txn_put_command, flags=[
            *_key_flags("txn put"), _rate_flag("txns"),
            Flag("txn-ops", "int", 1, "Number of puts per txn"),
            Flag("total", "int", 10000, "Total number of txn requests"),
            Flag("key-space-size", "int", 1, "Maximum possible keys"),
        ]),
        Command("watch-latency", "Benchmark watch latency", watch_latency_command, flags=[
            *_key_flags("watch response", 32, 32),
            Flag("put-total", "int", 1000, "Total number of put requests"),
            Flag("total", "int", 1000, "Same as --put-total"),
            Flag("put-rate", "int", 100, "Number of keys to put per second"),
        ]),
        Command("lease-keepalive", "Benchmark lease keepalive", lease_keepalive_command, flags=[
            Flag("total", "int", 10000, "Total number of lease keepalive requests"),
        ]),
    )  # fmt: skip
    return [group]


__all__ = ["commands", "connect"]
