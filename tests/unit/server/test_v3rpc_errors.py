"""The gRPC error table and to_grpc_status: etcd's codes and exact messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

import grpc
import pytest

from minietcd import errors as E
from minietcd.server.v3rpc import errors as R
from minietcd.server.v3rpc.errors import (
    BY_MESSAGE,
    ERRORS,
    INTERNAL_MESSAGES,
    MAX_UNKNOWN_MESSAGE,
    lookup,
    to_grpc_status,
)

C = grpc.StatusCode
ETCD_SRC = Path("/tmp/etcdsrc/usr/share/gocode/src/go.etcd.io/etcd")

# --- the table itself -----------------------------------------------------------------------


def test_messages_and_names_are_unique() -> None:
    assert len(BY_MESSAGE) == len(ERRORS)
    assert len({e.go_name for e in ERRORS}) == len(ERRORS)


def test_every_message_constant_is_in_the_table_or_deliberately_unknown() -> None:
    unknown_on_purpose = {R.ERR_UNKNOWN_METHOD, R.ERR_CANCELED, R.ERR_TIMEOUT_LEADER_TRANSFER}
    constants = {v for k, v in vars(R).items() if k.startswith("ERR_") and isinstance(v, str)}
    assert constants - unknown_on_purpose == set(BY_MESSAGE)
    assert not unknown_on_purpose & set(BY_MESSAGE)
    for msg in constants:
        assert msg.startswith("etcdserver: ")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("etcdserver: no leader", C.UNAVAILABLE),
        ("etcdserver: not leader", C.FAILED_PRECONDITION),
        ("etcdserver: request timed out", C.UNAVAILABLE),
        ("etcdserver: request timed out, possibly due to previous leader failure", C.UNAVAILABLE),
        ("etcdserver: request timed out, possibly due to connection lost", C.UNAVAILABLE),
        ("etcdserver: request timed out, waiting for the applied index took too long", C.UNAVAILABLE),
        ("etcdserver: leader changed", C.UNAVAILABLE),
        ("etcdserver: server stopped", C.UNAVAILABLE),
        ("etcdserver: not capable", C.UNAVAILABLE),
        ("etcdserver: mvcc: required revision has been compacted", C.OUT_OF_RANGE),
        ("etcdserver: mvcc: required revision is a future revision", C.OUT_OF_RANGE),
        ("etcdserver: mvcc: database space exceeded", C.RESOURCE_EXHAUSTED),
        ("etcdserver: request is too large", C.INVALID_ARGUMENT),
        ("etcdserver: too many requests", C.RESOURCE_EXHAUSTED),
        ("etcdserver: key is not provided", C.INVALID_ARGUMENT),
        ("etcdserver: key not found", C.INVALID_ARGUMENT),
        ("etcdserver: value is provided", C.INVALID_ARGUMENT),
        ("etcdserver: lease is provided", C.INVALID_ARGUMENT),
        ("etcdserver: too many operations in txn request", C.INVALID_ARGUMENT),
        ("etcdserver: duplicate key given in txn request", C.INVALID_ARGUMENT),
        ("etcdserver: requested lease not found", C.NOT_FOUND),
        ("etcdserver: lease already exists", C.FAILED_PRECONDITION),
        ("etcdserver: too large lease TTL", C.OUT_OF_RANGE),
        ("etcdserver: watch canceled", C.CANCELLED),
        ("etcdserver: member ID already exist", C.FAILED_PRECONDITION),
        ("etcdserver: Peer URLs already exists", C.FAILED_PRECONDITION),
        ("etcdserver: re-configuration failed due to not enough started members", C.FAILED_PRECONDITION),
        ("etcdserver: given member URLs are invalid", C.INVALID_ARGUMENT),
        ("etcdserver: member not found", C.NOT_FOUND),
        ("etcdserver: can only promote a learner member", C.FAILED_PRECONDITION),
        ("etcdserver: can only promote a learner member which is in sync with leader", C.FAILED_PRECONDITION),
        ("etcdserver: too many learner members in cluster", C.FAILED_PRECONDITION),
        ("etcdserver: rpc not supported for learner", C.UNAVAILABLE),
        ("etcdserver: unhealthy cluster", C.UNAVAILABLE),
        ("etcdserver: corrupt cluster", C.DATA_LOSS),
        ("etcdserver: bad leader transferee", C.FAILED_PRECONDITION),
        ("etcdserver: permission denied", C.PERMISSION_DENIED),
        ("etcdserver: invalid auth token", C.UNAUTHENTICATED),
        ("etcdserver: authentication is not enabled", C.FAILED_PRECONDITION),
        ("etcdserver: user name is empty", C.INVALID_ARGUMENT),
        ("etcdserver: revision of auth store is old", C.INVALID_ARGUMENT),
        ("etcdserver: invalid sort option", C.INVALID_ARGUMENT),  # etcd 3.5
    ],
)
def test_known_codes(message: str, code: grpc.StatusCode) -> None:
    row = BY_MESSAGE[message]
    assert row.code == code
    assert to_grpc_status(E.ServerError(message)) == (code, message)


# --- to_grpc_status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (E.CompactedRevisionError("rev 3 < 5"), C.OUT_OF_RANGE, R.ERR_COMPACTED),
        (E.FutureRevisionError("rev 9 > 5"), C.OUT_OF_RANGE, R.ERR_FUTURE_REV),
        (E.KeyNotFoundError("key b'x'"), C.INVALID_ARGUMENT, R.ERR_KEY_NOT_FOUND),
        (E.EmptyKeyError("put"), C.INVALID_ARGUMENT, R.ERR_EMPTY_KEY),
        (E.ValueProvidedError(), C.INVALID_ARGUMENT, R.ERR_VALUE_PROVIDED),
        (E.LeaseProvidedError(), C.INVALID_ARGUMENT, R.ERR_LEASE_PROVIDED),
        (E.LeaseNotFoundError("lease 5"), C.NOT_FOUND, R.ERR_LEASE_NOT_FOUND),
        # A subclass inherits its parent's etcd wording.
        (E.LeaseExpiredError("lease 5 expired"), C.NOT_FOUND, R.ERR_LEASE_NOT_FOUND),
        (E.LeaseExistsError("lease 5"), C.FAILED_PRECONDITION, R.ERR_LEASE_EXIST),
        (E.LeaseTTLTooLargeError("ttl"), C.OUT_OF_RANGE, R.ERR_LEASE_TTL_TOO_LARGE),
        (E.ServerError(R.ERR_NO_LEADER), C.UNAVAILABLE, R.ERR_NO_LEADER),
        (E.ServerError(R.ERR_TIMEOUT), C.UNAVAILABLE, R.ERR_TIMEOUT),
    ],
)
def test_domain_errors(exc: BaseException, code: grpc.StatusCode, message: str) -> None:
    assert to_grpc_status(exc) == (code, message)


@pytest.mark.parametrize(("internal", "grpc_message"), sorted(INTERNAL_MESSAGES.items()))
def test_internal_messages_translate(internal: str, grpc_message: str) -> None:
    assert to_grpc_status(E.ServerError(internal)) == (BY_MESSAGE[grpc_message].code, grpc_message)
    assert lookup(internal) is BY_MESSAGE[grpc_message]


def test_every_error_class_with_an_etcd_message_maps_to_a_row() -> None:
    # Server-side errors only: client-side ones (e.g. "context deadline exceeded", raised by the
    # client library when its own timeout passes) never cross the gRPC edge.
    client_error = getattr(E, "ClientError", ())
    classes = [
        cls
        for cls in vars(E).values()
        if isinstance(cls, type)
        and issubclass(cls, E.MinietcdError)
        and not (client_error and issubclass(cls, client_error))
        and cls.etcd_message
    ]
    assert classes  # the tree has such leaves
    for cls in classes:
        assert cls.etcd_message in BY_MESSAGE, cls


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("boom"), "boom"),
        (
            E.ServerError("etcdserver: request timed out, leader transfer took too long"),
            R.ERR_TIMEOUT_LEADER_TRANSFER,
        ),
        (E.ServerError("not an etcd message"), "not an etcd message"),
        (E.ProposalDroppedError("raft: proposal dropped"), "raft: proposal dropped"),
        (E.LeaseNotPrimaryError("not a primary lessor"), "not a primary lessor"),
        (KeyError(), "KeyError"),  # empty str(): say what it was
        (RuntimeError("etcdserver: no leader"), "etcdserver: no leader"),  # not ours: UNKNOWN
    ],
)
def test_everything_else_is_unknown(exc: BaseException, message: str) -> None:
    assert to_grpc_status(exc) == (C.UNKNOWN, message)


def test_unknown_never_carries_a_traceback() -> None:
    def fail() -> None:
        raise ZeroDivisionError("division by zero")

    try:
        fail()
    except ZeroDivisionError as e:
        code, message = to_grpc_status(e)
    assert code == C.UNKNOWN
    assert message == "division by zero"
    assert "Traceback" not in message and "\n" not in message


def test_broken_str_and_huge_messages() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    assert to_grpc_status(Weird()) == (C.UNKNOWN, "Weird")
    code, message = to_grpc_status(ValueError("x" * 100_000))
    assert code == C.UNKNOWN
    assert len(message) == MAX_UNKNOWN_MESSAGE and message.endswith("...")


def test_etcd_message_not_a_string_is_unknown() -> None:
    err = E.MinietcdError("odd")
    err.etcd_message = None
    assert to_grpc_status(err) == (C.UNKNOWN, "odd")


# --- cross-check against etcd's Go source ---------------------------------------------------


def _etcd_source() -> Path:
    if not ETCD_SRC.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"etcd source expected at {ETCD_SRC} in CI")
        pytest.skip(f"etcd 3.4 source not unpacked at {ETCD_SRC} (and CI is unset)")
    return ETCD_SRC


def _go_code(name: str) -> grpc.StatusCode:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
    return C.CANCELLED if snake == "CANCELED" else C[snake]


_GRPC_ERR = re.compile(r'^\s*(ErrG\w+)\s*=\s*status\.New\(codes\.(\w+),\s*"([^"]*)"\)', re.M)
_GO_ERR = re.compile(r'^\s*(Err\w+)\s*=\s*errors\.New\("([^"]*)"\)', re.M)


def _grpc_errors_go() -> dict[str, tuple[grpc.StatusCode, str]]:
    text = (_etcd_source() / "etcdserver/api/v3rpc/rpctypes/error.go").read_text()
    return {m[1]: (_go_code(m[2]), m[3]) for m in _GRPC_ERR.finditer(text)}


def test_table_matches_rpctypes_error_go() -> None:
    go = _grpc_errors_go()
    assert len(go) > 40  # the parse found the table
    ours = {e.go_name: (e.code, e.message) for e in ERRORS}
    added_after_34 = {"ErrGRPCInvalidSortOption"}
    assert set(ours) - added_after_34 == set(go)
    for name, want in go.items():
        assert ours[name] == want, name


def test_internal_messages_match_togrpcerror() -> None:
    """Every row of util.go's toGRPCErrorMap: the inner error's text maps to its gRPC error."""
    src = _etcd_source()
    inner: dict[str, str] = {}
    for pkg, path in [
        ("etcdserver", "etcdserver/errors.go"),
        ("membership", "etcdserver/api/membership/errors.go"),
        ("mvcc", "mvcc/kvstore.go"),
        ("lease", "lease/lessor.go"),
        ("auth", "auth/store.go"),
    ]:
        for m in _GO_ERR.finditer((src / path).read_text()):
            inner[f"{pkg}.{m[1]}"] = m[2]
    grpc_errs = _grpc_errors_go()
    util = (src / "etcdserver/api/v3rpc/util.go").read_text()
    rows = re.findall(r"^\s*(\w+\.Err\w+):\s*rpctypes\.(Err\w+),", util, re.M)
    assert len(rows) > 40
    for inner_name, target in rows:
        # Two rows name the client-side error value; its text is the ErrGRPC one's.
        target = {
            "ErrMemberNotEnoughStarted": "ErrGRPCMemberNotEnoughStarted",
            "ErrTooManyRequests": "ErrGRPCRequestTooManyRequests",
        }.get(target, target)
        code, message = grpc_errs[target]
        got = lookup(inner[inner_name])
        assert got is not None, inner_name
        assert (got.code, got.message) == (code, message), inner_name
