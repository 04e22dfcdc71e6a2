"""The gRPC error table and to_grpc_status: etcd's codes and exact messages."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from minietcd import errors as E
from minietcd.server.v3rpc.errors import (
    BY_MESSAGE,
    ERRORS,
    INTERNAL_MESSAGES,
    MAX_UNKNOWN_MESSAGE,
    lookup,
    to_grpc_status,
)
from tests.etcd_source import find_etcd_source

C = grpc.StatusCode

# --- the table itself -----------------------------------------------------------------------


def test_messages_and_names_are_unique() -> None:
    assert len(BY_MESSAGE) == len(ERRORS)
    assert len({e.go_name for e in ERRORS}) == len(ERRORS)


def _server_classes() -> list[type[E.MinietcdError]]:
    """Every class of the tree that carries an etcd message, client side left out."""
    return [
        cls
        for cls in vars(E).values()
        if isinstance(cls, type)
        and issubclass(cls, E.MinietcdError)
        and not issubclass(cls, E.ClientError)
        and cls.etcd_message
    ]


def test_every_message_class_is_in_the_table_or_deliberately_unknown() -> None:
    # etcdserver errors that etcd's togRPCError has no row for: UNKNOWN with the text, as etcd.
    unknown_on_purpose = {
        E.UnknownMethodError,
        E.RequestCanceledError,
        E.LeaderTransferTimeoutError,
        E.UnsupportedRequestError,
        E.MemberContextMissingError,
        # auth/store.go errors with no gRPC row: their own words ("auth: ..."), as etcd sends them.
        E.NoPasswordUserError,
        E.AuthVerifyOnlyError,
    }
    classes = _server_classes()
    unknown = {cls for cls in classes if cls.grpc_code == E.GrpcCode.UNKNOWN}
    # The lock and election recipes' errors are plain text in etcd too (no "etcdserver:").
    assert unknown - {c for c in unknown if issubclass(c, E.ConcurrencyError)} == unknown_on_purpose
    assert {cls.etcd_message for cls in classes} - {c.etcd_message for c in unknown} == set(BY_MESSAGE)
    assert not {c.etcd_message for c in unknown} & set(BY_MESSAGE)
    for cls in classes:
        if not issubclass(cls, E.ConcurrencyError | E.NoPasswordUserError | E.AuthVerifyOnlyError):
            assert (cls.etcd_message or "").startswith("etcdserver: ")


def test_grpc_codes_are_grpcs() -> None:
    assert {(c.name, c.value) for c in E.GrpcCode} == {(c.name, c.value[0]) for c in grpc.StatusCode}


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
    assert to_grpc_status(row.error()) == (code, message)
    assert E.error_for_message(message) is row.error


# --- to_grpc_status -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (E.CompactedRevisionError("rev 3 < 5"), C.OUT_OF_RANGE, E.CompactedRevisionError.etcd_message),
        (E.FutureRevisionError("rev 9 > 5"), C.OUT_OF_RANGE, E.FutureRevisionError.etcd_message),
        (E.KeyNotFoundError("key b'x'"), C.INVALID_ARGUMENT, E.KeyNotFoundError.etcd_message),
        (E.EmptyKeyError("put"), C.INVALID_ARGUMENT, E.EmptyKeyError.etcd_message),
        (E.ValueProvidedError(), C.INVALID_ARGUMENT, E.ValueProvidedError.etcd_message),
        (E.LeaseProvidedError(), C.INVALID_ARGUMENT, E.LeaseProvidedError.etcd_message),
        (E.LeaseNotFoundError("lease 5"), C.NOT_FOUND, E.LeaseNotFoundError.etcd_message),
        # A subclass inherits its parent's etcd wording.
        (E.LeaseExpiredError("lease 5 expired"), C.NOT_FOUND, E.LeaseNotFoundError.etcd_message),
        (E.LeaseExistsError("lease 5"), C.FAILED_PRECONDITION, E.LeaseExistsError.etcd_message),
        (E.LeaseTTLTooLargeError("ttl"), C.OUT_OF_RANGE, E.LeaseTTLTooLargeError.etcd_message),
        (E.NoLeaderError(), C.UNAVAILABLE, "etcdserver: no leader"),
        (E.RequestTimeoutError(), C.UNAVAILABLE, "etcdserver: request timed out"),
        (E.TxnTooDeepError(), C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
        (E.MemberIDRemovedError("gone"), C.NOT_FOUND, "etcdserver: member not found"),
    ],
)
def test_domain_errors(exc: BaseException, code: grpc.StatusCode, message: str) -> None:
    assert to_grpc_status(exc) == (code, message)


@pytest.mark.parametrize("internal", sorted(INTERNAL_MESSAGES))
def test_internal_messages_translate(internal: str) -> None:
    cls = INTERNAL_MESSAGES[internal]
    grpc_message = cls.etcd_message or ""
    assert to_grpc_status(cls()) == (BY_MESSAGE[grpc_message].code, grpc_message)
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
        and cls.grpc_code != E.GrpcCode.UNKNOWN  # sent as plain text, like etcd (see above)
    ]
    assert classes  # the tree has such leaves
    for cls in classes:
        assert cls.etcd_message in BY_MESSAGE, cls


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError("boom"), "boom"),
        (
            E.LeaderTransferTimeoutError(),
            "etcdserver: request timed out, leader transfer took too long",
        ),
        (E.ClusterInfoError("not an etcd message"), "not an etcd message"),
        (E.NotElectionLeaderError(), "election: not leader"),
        (E.RecipeError(E.NoLeaderError()), "etcdserver: no leader"),  # lock/election: etcd's text
        (E.RecipeError(E.ProposalDroppedError("dropped")), "dropped"),
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


def _etcd_source(tmp_path: Path) -> Path:
    return find_etcd_source(
        tmp_path,
        ("etcdserver/api/v3rpc/rpctypes/error.go", "etcdserver/api/v3rpc/util.go", "auth/store.go"),
    )


def _go_code(name: str) -> grpc.StatusCode:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
    return C.CANCELLED if snake == "CANCELED" else C[snake]


_GRPC_ERR = re.compile(r'^\s*(ErrG\w+)\s*=\s*status\.New\(codes\.(\w+),\s*"([^"]*)"\)', re.M)
_GO_ERR = re.compile(r'^\s*(Err\w+)\s*=\s*errors\.New\("([^"]*)"\)', re.M)


def _grpc_errors_go(src: Path) -> dict[str, tuple[grpc.StatusCode, str]]:
    text = (src / "etcdserver/api/v3rpc/rpctypes/error.go").read_text()
    return {m[1]: (_go_code(m[2]), m[3]) for m in _GRPC_ERR.finditer(text)}


def test_table_matches_rpctypes_error_go(tmp_path: Path) -> None:
    go = _grpc_errors_go(_etcd_source(tmp_path))
    assert len(go) > 40  # the parse found the table
    ours = {e.go_name: (e.code, e.message) for e in ERRORS}
    added_after_34 = {"ErrGRPCInvalidSortOption"}
    assert set(ours) - added_after_34 == set(go)
    for name, want in go.items():
        assert ours[name] == want, name


def test_internal_messages_match_togrpcerror(tmp_path: Path) -> None:
    """Every row of util.go's toGRPCErrorMap: the inner error's text maps to its gRPC error."""
    src = _etcd_source(tmp_path)
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
    grpc_errs = _grpc_errors_go(src)
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
