"""Auth side by side: the same etcdctl script against real etcd 3.4 and minietcd, and minietcdctl.

Two scripts, each run three times on a fresh 3-member cluster: the real etcdctl against etcd
(the reference), the real etcdctl against minietcd, and minietcdctl against minietcd. Every
command's exit code, stdout and stderr must be the same after normalisation (ports, member and
cluster IDs, raft terms, lease IDs, etcdctl's log timestamps: ``test_etcdctl_compare.normalise``).

- ``SCRIPT`` (simple tokens, etcd's default): users, roles, grants over keys, prefixes, ranges
  and from-key ranges, ``auth enable`` (etcdctl adds the root role itself), then what a user may
  and may not do: reads, writes, txns, watches, leases, locks, member and maintenance calls that
  need root, user and role reads of one's own, a password change, the root user and role that
  cannot go while auth is on, revoked grants, ``auth disable``.
- ``CERT_JWT_SCRIPT`` (a TLS cluster with ``--client-cert-auth`` and ``--auth-token jwt,...``):
  a client certificate's Common Name is the user when no password is given; passwords log in
  with JWTs (RS256), also across a permission change (the token's revision goes stale and
  etcdctl logs in again).

One difference is kept out of the scripts on purpose: ``lease timetolive --keys`` by a user who
may not read the keys is refused by minietcd (etcd 3.4.26 and 3.5 fixed the leak etcd 3.4.23
still has); ``tests/unit/server/test_auth_api.py`` checks it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.harness import (
    ETCDCTL,
    ProcessCluster,
    etcd_binary,
    free_ports,
    minietcd_binary,
    require_binary,
)
from tests.compat.test_etcdctl_compare import Context, StepResult, normalise
from tests.compat.test_minietcdctl_vs_etcdctl import MINIETCDCTL, run_tool

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
# Cheap hashes keep the script fast; the default cost (10) is checked in the unit tests.
COST = ("--bcrypt-cost", "4")
ALICE = "--user=alice:alicepw"
ADMIN = "--user=root:rootpw"

TXN_OK = 'value("/pub/a") = "1"\n\nput /app/t yes\nget /pub/ --prefix\n\nput /app/f no\n\n'
TXN_WRITE_DENIED = "\n\nput /pub/t yes\n\n\n"
TXN_COMPARE_DENIED = 'value("/secret") = "x"\n\nput /app/t yes\n\n\n'


@dataclass
class Step:
    """One etcdctl command line ({ep}: n1's client URL, {lease}: the lease captured earlier)."""

    args: str
    stdin: str = ""
    until: str | None = None  # long-running: wait for this regex on stdout, then SIGINT
    capture: bool = False  # remember the lease ID this command prints


SCRIPT: list[Step] = [
    Step("user add root:rootpw"),
    Step("user add root:again"),
    Step("user add alice:alicepw"),
    Step("user add bob --no-password"),
    Step("user add :nopw"),
    Step("user add carol --new-user-password=carolpw"),
    Step("user add dave --interactive=false", stdin="davepw\n"),
    Step("user list"),
    Step("user list -w json"),
    Step("user get alice"),
    Step("user get nobody"),
    Step("role add reader"),
    Step("role add reader"),
    Step("role add ''"),
    Step("role grant-permission reader read /pub/ --prefix"),
    Step("role grant-permission reader readwrite /app/ --prefix"),
    Step("role grant-permission reader write /wo"),
    Step("role grant-permission reader read /zfrom --from-key"),
    Step("role grant-permission reader read /r1 /r3"),
    Step("role grant-permission reader read /r3 /r5"),
    Step("role grant-permission reader Write /wo"),
    Step("role grant-permission reader bogus /x"),
    Step("role grant-permission nobody read /x"),
    Step("role grant-permission reader read /x --prefix --from-key"),
    Step("role grant-permission reader read /x /y --prefix"),
    Step("role grant-permission reader read"),
    Step("role get reader"),
    Step("role get reader -w json"),
    Step("role get reader -w fields"),
    Step("role get reader -w table"),
    Step("role get nobody"),
    Step("role list"),
    Step("role list -w fields"),
    Step("user grant-role alice reader"),
    Step("user grant-role alice reader"),
    Step("user grant-role alice nobody"),
    Step("user grant-role nobody reader"),
    Step("user grant-role bob reader"),
    Step("user get alice --detail"),
    Step("user revoke-role alice nobody"),
    Step("put /pub/a 1"),
    Step("put /app/x 1"),
    Step("put /secret s"),
    Step("auth enable"),
    Step("auth enable"),
    # --- anonymous, wrong password, no-password user
    Step("get /pub/a"),
    Step("put /pub/a 2"),
    Step("--user=alice:wrong get /pub/a"),
    Step("--user=nobody:x get /pub/a"),
    Step("--user=bob:x get /pub/a"),
    # --- reads
    Step(f"{ALICE} get /pub/a"),
    Step(f"{ALICE} get /pub/ --prefix -w json"),
    Step(f"{ALICE} get /secret"),
    Step(f"{ALICE} get /r1 /r5"),
    Step(f"{ALICE} get /r1 /r6"),
    Step(f"{ALICE} get /zfrom --from-key"),
    Step(f"{ALICE} get /zfro --from-key"),
    Step(f"{ALICE} get /wo"),
    Step(f"{ALICE} get '' --prefix"),
    # --- writes
    Step(f"{ALICE} put /pub/b 2"),
    Step(f"{ALICE} put /app/y 2"),
    Step(f"{ALICE} put /app/y 3 --prev-kv"),
    Step(f"{ALICE} put /wo w"),
    Step(f"{ALICE} put /wo w --prev-kv"),
    Step(f"{ALICE} del /app/y --prev-kv"),
    Step(f"{ALICE} del /pub/a"),
    Step(f"{ALICE} del /app/ --prefix"),
    Step(f"{ALICE} compaction 2"),
    # --- transactions
    Step(f"{ALICE} txn", stdin=TXN_OK),
    Step(f"{ALICE} txn", stdin=TXN_WRITE_DENIED),
    Step(f"{ALICE} txn", stdin=TXN_COMPARE_DENIED),
    # --- watches: refused at creation, or served
    Step(f"{ALICE} watch /secret"),
    Step(f"{ALICE} watch /pub/ --prefix --rev=1", until=r"/pub/a\n1\n"),
    # --- leases: root's lease holds a key alice cannot write
    Step(f"{ADMIN} lease grant 600", capture=True),
    Step(f"{ADMIN} put /secret/k v --lease={{lease}}"),
    Step(f"{ALICE} put /app/l v --lease={{lease}}"),
    Step(f"{ALICE} lease revoke {{lease}}"),
    Step(f"{ALICE} lease grant 600", capture=True),
    Step(f"{ALICE} put /app/l v --lease={{lease}}"),
    Step(f"{ALICE} lease timetolive {{lease}} --keys"),
    Step(f"{ALICE} lease revoke {{lease}}"),
    Step(f"{ALICE} lease list"),
    # --- lock and election run as the caller
    Step(f"{ALICE} lock /app/lock echo locked"),
    Step(f"{ALICE} lock /secret-lock echo locked"),
    Step(f"{ALICE} elect /secret-election p1"),
    # --- membership and maintenance: root only, except reads of the member list and status
    Step(f"{ALICE} member list"),
    Step(f"{ALICE} member add n9 --peer-urls=http://127.0.0.1:1"),
    Step(f"{ALICE} member remove 1234"),
    Step(f"{ALICE} endpoint hashkv"),
    Step(f"{ALICE} defrag"),
    Step(f"{ALICE} snapshot save {{tmp}}/alice.db"),
    Step(f"{ALICE} alarm list"),
    Step(f"{ADMIN} endpoint hashkv"),
    Step(f"{ADMIN} alarm list"),
    # --- users and roles: root, or one's own
    Step(f"{ALICE} user list"),
    Step(f"{ALICE} user get alice"),
    Step(f"{ALICE} user get root"),
    Step(f"{ALICE} role get reader"),
    Step(f"{ALICE} role get root"),
    Step(f"{ALICE} role list"),
    Step(f"{ALICE} user add eve:evepw"),
    Step(f"{ALICE} auth disable"),
    Step(f"{ADMIN} user list"),
    Step(f"{ADMIN} role get root"),
    Step(f"{ADMIN} user get root -w json"),
    # --- the root user and role stay while auth is on
    Step(f"{ADMIN} user delete root"),
    Step(f"{ADMIN} user revoke-role root root"),
    Step(f"{ADMIN} role delete root"),
    # --- a password change: the old one stops working
    Step(f"{ADMIN} user passwd alice --interactive=false", stdin="newpw\n"),
    Step(f"{ALICE} get /pub/a"),
    Step("--user=alice --password=newpw get /pub/a"),
    # --- grants revoked, roles and users deleted
    Step(f"{ADMIN} role revoke-permission reader /pub/ --prefix"),
    Step(f"{ADMIN} role revoke-permission reader /pub/ --prefix"),
    Step(f"{ADMIN} role revoke-permission reader /zfrom --from-key"),
    Step(f"{ADMIN} role revoke-permission reader /r1 /r3"),
    Step(f"{ADMIN} role revoke-permission nobody /x"),
    Step("--user=alice:newpw get /pub/a"),
    Step(f"{ADMIN} user revoke-role alice reader"),
    Step(f"{ADMIN} user revoke-role alice reader"),
    Step("--user=alice:newpw get /app/x"),
    Step(f"{ADMIN} role delete reader"),
    Step(f"{ADMIN} role delete reader"),
    Step(f"{ADMIN} user get bob"),
    Step(f"{ADMIN} user delete carol"),
    Step(f"{ADMIN} user delete carol"),
    Step("--user=carol:carolpw get /pub/a"),
    Step(f"{ADMIN} user list"),
    Step(f"{ADMIN} role list"),
    Step(f"{ADMIN} get '' --prefix --keys-only"),
    # --- off again
    Step(f"{ADMIN} auth disable"),
    Step("auth disable"),
    Step("get /pub/a"),
    Step(f"{ADMIN} get /pub/a"),
    Step("user list"),
    Step("user delete root"),
    Step("auth enable"),
]

CERT_JWT_SCRIPT: list[Step] = [
    Step("{root} user add root:rootpw"),
    Step("{root} user add alice --no-password"),
    Step("{root} role add app"),
    Step("{root} role grant-permission app readwrite /app/ --prefix"),
    Step("{root} user grant-role alice app"),
    Step("{root} put /app/x 1"),
    Step("{root} put /other o"),
    Step("{root} auth enable"),
    # The certificate's CN is the user when no password is given.
    Step("{root} user list"),
    Step("{root} get /other"),
    Step("{alice} get /app/x"),
    Step("{alice} put /app/y 2"),
    Step("{alice} get /other"),
    Step("{alice} put /other 2"),
    Step("{alice} txn", stdin="\n\nput /other t\n\n\n"),
    Step("{alice} watch /other"),
    Step("{alice} user list"),
    Step("{alice} user get alice"),
    Step("{nobody} get /app/x"),
    Step("{nobody} put /app/x 3"),
    # A password logs in (a JWT), whoever the certificate names.
    Step("{alice} --user=root:rootpw get /other"),
    Step("{alice} --user=root:wrong get /other"),
    Step("{root} --user=alice:x get /app/x"),
    # A JWT minted before a permission change is stale afterwards: etcdctl logs in again.
    Step("{root} --user=root:rootpw role grant-permission app read /other"),
    Step("{alice} get /other"),
    Step("{nobody} --user=root:rootpw get /other"),
    Step("{root} auth disable"),
    Step("{nobody} get /other"),
]


# ------------------------------------------------------------------------------------ running


def run_script(
    tool: list[str],
    cluster: ProcessCluster,
    tmp: Path,
    script: list[Step],
    extra: dict[str, str] | None = None,
) -> list[StepResult]:
    """Start ``cluster``, run ``script`` with ``tool`` against n1; the normalised results."""
    results: list[StepResult] = []
    try:
        cluster.start()
        cluster.wait_healthy(30.0)
        cluster.transfer_leadership(0)
        ctx = Context(cluster, tmp)
        ctx.learn()
        values = {"ep": cluster.endpoint(0), "tmp": str(tmp), "lease": "0", **(extra or {})}
        leases: dict[str, str] = {}
        for step in script:
            text = step.args.format(**values)
            args = [*cluster.etcdctl_flags, *shlex.split(text), f"--endpoints={cluster.endpoint(0)}"]
            r = run_tool(tool, args, step.stdin, {}, step.until)
            out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
            if step.capture:
                m = re.search(r"lease ([0-9a-f]{16}) granted", out)
                assert m is not None, f"{text}: no lease ID in {out!r} / {err!r}"
                values["lease"] = m.group(1)
                leases.setdefault(m.group(1), f"<lease{len(leases) + 1}>")
            # Normalised under the command's name without the credentials (e.g. "endpoint hashkv").
            name = re.sub(r"^(\{\w+\} |--user=\S+ |--password=\S+ )+", "", step.args)
            result = normalise(StepResult(name, step.stdin or None, r.returncode, out, err), ctx)
            result.command = step.args
            results.append(_leases(result, leases))
    finally:
        cluster.wipe()
    return results


def _leases(r: StepResult, leases: dict[str, str]) -> StepResult:
    """Lease IDs are random: named by order of grant. Remaining TTLs tick."""

    def sub(s: str) -> str:
        for lid, name in leases.items():
            s = s.replace(lid, name).replace(str(int(lid, 16)), name)
        return re.sub(r"remaining\(\d+s\)", "remaining(Ns)", s)

    return StepResult(r.command, r.stdin, r.returncode, sub(r.stdout), sub(r.stderr))


def _without_logs(stderr: str) -> str:
    """etcdctl's own zap log lines (its retry warnings), which minietcdctl does not print."""
    return "".join(ln for ln in stderr.splitlines(keepends=True) if not ln.startswith("{"))


def compare(reference: list[StepResult], other: list[StepResult], who: str, logs: bool = True) -> list[str]:
    problems = []
    for e, a in zip(reference, other, strict=True):
        e_err, a_err = (e.stderr, a.stderr) if logs else (_without_logs(e.stderr), _without_logs(a.stderr))
        if (e.returncode, e.stdout, e_err) != (a.returncode, a.stdout, a_err):
            problems.append(
                f"$ {e.command}\n  exit: etcd {e.returncode}, {who} {a.returncode}\n"
                f"  etcd stdout:  {e.stdout!r}\n  {who} stdout: {a.stdout!r}\n"
                f"  etcd stderr:  {e.stderr[-400:]!r}\n  {who} stderr: {a.stderr[-400:]!r}"
            )
    return problems


def _three_runs(
    make: Callable[[list[str], Path], ProcessCluster], tmp: Path, script: list[Step], extra: dict[str, str]
) -> list[str]:
    etcdctl = [require_binary(ETCDCTL)]
    runs = []
    for tag, tool, server in (
        ("etcd", etcdctl, etcd_binary()),
        ("minietcd", etcdctl, minietcd_binary()),
        ("minietcdctl", MINIETCDCTL, minietcd_binary()),
    ):
        d = tmp / tag
        d.mkdir()
        runs.append(run_script(tool, make(server, d), d, script, extra))
    problems = compare(runs[0], runs[1], "minietcd") + compare(runs[0], runs[2], "minietcdctl", logs=False)
    return problems


def test_auth_script_matches_etcd(tmp_path: Path) -> None:
    ports = free_ports(6)  # the same ports for every run: the same member and cluster IDs

    def make(binary: list[str], d: Path) -> ProcessCluster:
        return ProcessCluster(binary, 3, d, extra_flags=COST, ports=ports, token="auth-compare")

    problems = _three_runs(make, tmp_path, SCRIPT, {})
    assert not problems, f"{len(problems)} of {len(SCRIPT)} commands differ:\n\n" + "\n\n".join(problems)


# ---------------------------------------------------------------------- certificates and JWT


def _openssl(d: Path, *args: str) -> None:
    subprocess.run([require_binary("openssl"), *args], cwd=d, check=True, capture_output=True)


def make_pki(d: Path) -> dict[str, Path]:
    """A CA; a server certificate for 127.0.0.1 (also a client one: followers forward lease
    calls with it); client certificates with CN root, alice and nobody; an RSA key pair for JWT."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(d, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=auth-ca")  # fmt: skip
    certs = {
        "server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        "root": "extendedKeyUsage=clientAuth",
        "alice": "extendedKeyUsage=clientAuth",
        "nobody": "extendedKeyUsage=clientAuth",
    }
    for name, ext in certs.items():
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl(d, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", f"{name}.ext")  # fmt: skip
    _openssl(d, "genrsa", "-out", "jwt.key", "2048")
    _openssl(d, "rsa", "-in", "jwt.key", "-pubout", "-out", "jwt.pub")
    return {p.name: p for p in d.iterdir()}


def test_client_certificates_and_jwt_match_etcd(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    f = make_pki(pki)
    ports = free_ports(6)
    jwt = f"jwt,pub-key={f['jwt.pub']},priv-key={f['jwt.key']},sign-method=RS256,ttl=10m"
    server_tls = [
        "--cert-file", str(f["server.pem"]), "--key-file", str(f["server.key"]),
        "--trusted-ca-file", str(f["ca.pem"]), "--client-cert-auth",
        "--peer-cert-file", str(f["server.pem"]), "--peer-key-file", str(f["server.key"]),
        "--peer-trusted-ca-file", str(f["ca.pem"]), "--peer-client-cert-auth",
    ]  # fmt: skip

    def certs(name: str) -> str:
        return f"--cert={f[name + '.pem']} --key={f[name + '.key']}"

    def make(binary: list[str], d: Path) -> ProcessCluster:
        from tests.cluster.harness import ClientTLS

        return ProcessCluster(
            binary, 3, d, extra_flags=[*COST, "--auth-token", jwt, *server_tls], ports=ports,
            token="auth-jwt", scheme="https",
            # The harness's own etcdctl calls go as root (the script's steps name their own).
            etcdctl_flags=["--cacert", str(f["ca.pem"]), *certs("root").split()],
            client_tls=ClientTLS(str(f["ca.pem"]), str(f["root.pem"]), str(f["root.key"])),
        )  # fmt: skip

    extra = {name: certs(name) for name in ("root", "alice", "nobody")}
    problems = _three_runs(make, tmp_path, CERT_JWT_SCRIPT, extra)
    n = len(CERT_JWT_SCRIPT)
    assert not problems, f"{len(problems)} of {n} commands differ:\n\n" + "\n\n".join(problems)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-x", "-q"]))
