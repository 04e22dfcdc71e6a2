"""minietcd.golang: Go's strconv, time.Duration and pkg/flags rules, shared by the server and
minietcdctl. Expected values are what Go 1.x's standard library returns for the same input."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from minietcd.golang import (
    NumError,
    atoi,
    env_conflict_error,
    env_invalid_value_error,
    env_var_name,
    format_duration,
    parse_bool,
    parse_duration_ns,
    parse_int,
    parse_uint,
    put_uvarint,
    put_varint,
    quote,
    quote_list,
    unquote,
)


@pytest.mark.parametrize(
    ("text", "base", "value"),
    [
        ("10", 0, 10), ("0x1f", 0, 31), ("0o17", 0, 15), ("017", 0, 15), ("0b101", 0, 5),
        ("1_000", 0, 1000), ("0x_1f", 0, 31), ("0", 0, 0), ("ff", 16, 255), ("-12", 10, -12),
        ("+7", 10, 7), ("-9223372036854775808", 10, -(2**63)),
    ],
)  # fmt: skip
def test_parse_int_accepts_what_go_accepts(text: str, base: int, value: int) -> None:
    assert parse_int(text, base) == value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_int("", 10), 'strconv.ParseInt: parsing "": invalid syntax'),
        (lambda: parse_int("1__0"), 'strconv.ParseInt: parsing "1__0": invalid syntax'),
        (lambda: parse_int("_10"), 'strconv.ParseInt: parsing "_10": invalid syntax'),
        (lambda: parse_int("1_0", 10), 'strconv.ParseInt: parsing "1_0": invalid syntax'),
        (lambda: parse_int("٣", 10), 'strconv.ParseInt: parsing "٣": invalid syntax'),
        (lambda: parse_int("9223372036854775808", 10),
         'strconv.ParseInt: parsing "9223372036854775808": value out of range'),
        # Go reports the overflow as soon as it happens, before it sees the bad character.
        (lambda: parse_uint("fffffffffffffffffz", 16),
         'strconv.ParseUint: parsing "fffffffffffffffffz": value out of range'),
        (lambda: parse_uint("+5", 10), 'strconv.ParseUint: parsing "+5": invalid syntax'),
        (lambda: parse_uint("4294967296", 0, 32),
         'strconv.ParseUint: parsing "4294967296": value out of range'),
        (lambda: atoi("99999999999999999999"),
         'strconv.Atoi: parsing "99999999999999999999": value out of range'),
        (lambda: parse_bool("yes"), 'strconv.ParseBool: parsing "yes": invalid syntax'),
    ],
)  # fmt: skip
def test_strconv_errors_are_gos(call: Callable[[], object], message: str) -> None:
    with pytest.raises(NumError) as info:
        call()
    assert str(info.value) == message


def test_num_error_keeps_its_parts() -> None:
    with pytest.raises(NumError) as info:
        parse_uint("x", 16)
    assert (info.value.func, info.value.num, info.value.err) == ("ParseUint", "x", "invalid syntax")


def test_quote_and_unquote_are_gos() -> None:
    assert quote("\a\b\f\v\x7f") == '"\\a\\b\\f\\v\\x7f"'
    assert quote("\U0001f600 \u00e9") == '"\U0001f600 \u00e9"'
    assert quote("\U000e0001") == '"\\U000e0001"'
    assert quote_list(["a", 'b"']) == '["a" "b\\""]'
    assert unquote('"a\\x41\\101\\u00e9\\n"') == "aAAé\n"
    assert unquote("`raw\\n`") == "raw\\n"
    for bad in ('"a', "'a'", '"\\q"', '"\\\'"'):
        with pytest.raises(ValueError, match="invalid syntax"):
            unquote(bad)


def test_durations_are_gos() -> None:
    assert parse_duration_ns("1h2m3.5s") == 3723500000000
    assert parse_duration_ns("-1.5µs") == -1500
    assert parse_duration_ns(".5ms") == 500000
    assert parse_duration_ns("0") == 0
    for bad, why in (
        ("1", 'time: missing unit in duration "1"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("", 'time: invalid duration ""'),
        ("3000000h", 'time: invalid duration "3000000h"'),  # past int64 nanoseconds
    ):
        with pytest.raises(ValueError) as info:
            parse_duration_ns(bad)
        assert str(info.value) == why
    assert format_duration(3723.5) == "1h2m3.5s"
    assert format_duration(-0.0000015) == "-1.5µs"


def test_pkg_flags_environment_texts() -> None:
    assert env_var_name("ETCD", "initial-cluster-token") == "ETCD_INITIAL_CLUSTER_TOKEN"
    assert env_var_name("ETCDCTL", "dial-timeout") == "ETCDCTL_DIAL_TIMEOUT"
    assert env_conflict_error("ETCD_NAME") == (
        'conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line '
        "flag (either unset environment variable or disable flag)"
    )
    assert env_invalid_value_error("x", "ETCD_DEBUG", "parse error") == (
        'invalid value "x" for ETCD_DEBUG: parse error'
    )


def test_varints_are_encoding_binarys() -> None:
    assert put_uvarint(300) == b"\xac\x02"
    assert put_uvarint(-1) == b"\xff" * 9 + b"\x01"
    assert put_varint(-1) == b"\x01" and put_varint(1) == b"\x02"
