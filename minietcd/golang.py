"""Go's text rules that etcd's flags, messages and output depend on, written once.

etcd and etcdctl are Go programs: what users and scripts see is Go's ``strconv`` quoting and
number syntax, ``time.Duration`` text, the ``flag``/``pflag`` error wording, go-humanize's
sizes. minietcd matches them byte for byte, so the server (flags, config file, error messages),
minietcdctl and the bench tools all take them from here; nothing else re-implements them.

- ``strconv``: :func:`quote` (``%q``), :func:`quote_list`, :func:`unquote`, :func:`parse_bool`,
  :func:`parse_int`, :func:`parse_uint`, :func:`atoi`; failures are :class:`NumError` with Go's text.
- ``time``: :func:`parse_duration_ns` (exact, in nanoseconds), :func:`parse_duration` (seconds),
  :func:`format_duration` (``Duration.String``).
- etcd's ``pkg/flags``: :func:`env_var_name` and its two environment-variable errors.
- ``encoding/binary``: :func:`put_uvarint`, :func:`put_varint`; go-humanize:
  :func:`humanize_bytes`; ``unicode/utf8``: :func:`decode_rune`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "NumError",
    "atoi",
    "decode_rune",
    "env_conflict_error",
    "env_invalid_value_error",
    "env_var_name",
    "format_duration",
    "humanize_bytes",
    "parse_bool",
    "parse_duration",
    "parse_duration_ns",
    "parse_int",
    "parse_uint",
    "put_uvarint",
    "put_varint",
    "quote",
    "quote_list",
    "unquote",
]

# --- unicode/utf8 ----------------------------------------------------------------------------------


def decode_rune(data: bytes, i: int) -> tuple[int | None, int]:
    """``utf8.DecodeRune`` at ``data[i]``: (code point, size), or (None, 1) for an invalid byte."""
    b0 = data[i]
    if b0 < 0x80:
        return b0, 1
    for size, lo, hi in ((2, 0xC2, 0xE0), (3, 0xE0, 0xF0), (4, 0xF0, 0xF5)):
        if lo <= b0 < hi:
            chunk = data[i : i + size]
            if len(chunk) < size:
                return None, 1
            try:
                return ord(chunk.decode("utf-8")), size
            except UnicodeDecodeError:
                return None, 1
    return None, 1


# --- strconv: quoting ------------------------------------------------------------------------------

_GO_ESCAPES: Final = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
}  # fmt: skip


def quote(s: str | bytes) -> str:
    """``strconv.Quote`` (Go's ``%q``) of a Go string; ``bytes`` may hold invalid UTF-8."""
    data = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    out = ['"']
    i = 0
    while i < len(data):
        ch, size = decode_rune(data, i)
        if ch is None:
            out.append(f"\\x{data[i]:02x}")
            i += 1
            continue
        i += size
        c = chr(ch)
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif ch < 0x20 or ch == 0x7F:
            out.append(f"\\x{ch:02x}")
        elif ch < 0x10000:
            out.append(f"\\u{ch:04x}")
        else:
            out.append(f"\\U{ch:08x}")
    out.append('"')
    return "".join(out)


def quote_list(items: Iterable[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(quote(i) for i in items) + "]"


_SIMPLE_UNESCAPES: Final = {
    "a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34,
}  # fmt: skip


def unquote(s: str) -> str:
    """``strconv.Unquote`` of a double- or back-quoted string; ValueError("invalid syntax")."""
    if len(s) >= 2 and s[0] == s[-1] == "`":
        return s[1:-1]
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError("invalid syntax")
    body = s[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        e = body[i + 1]
        if e in _SIMPLE_UNESCAPES:
            out.append(_SIMPLE_UNESCAPES[e])
            i += 2
        elif e == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif (
            e in "01234567"
            and re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4])
            and int(body[i + 1 : i + 4], 8) < 256
        ):
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2 : i + 6]):
            out += chr(int(body[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
            i += 6
        elif e == "U" and re.fullmatch(r"[0-9a-fA-F]{8}", body[i + 2 : i + 10]):
            cp = int(body[i + 2 : i + 10], 16)
            if cp > 0x10FFFF:
                raise ValueError("invalid syntax")
            out += chr(cp).encode("utf-8")
            i += 10
        else:
            raise ValueError("invalid syntax")
    return out.decode("utf-8", "surrogateescape")


# --- strconv: numbers and bools --------------------------------------------------------------------

SYNTAX: Final = "invalid syntax"
RANGE: Final = "value out of range"


class NumError(ValueError):
    """``strconv.NumError``: ``strconv.<func>: parsing "<num>": <err>``.

    ``err`` is :data:`SYNTAX` or :data:`RANGE`; Go's ``flag`` package shows only that part
    ("parse error" / "value out of range"), pflag and etcdctl show the whole text.
    """

    def __init__(self, func: str, num: str, err: str) -> None:
        super().__init__(f"strconv.{func}: parsing {quote(num)}: {err}")
        self.func = func
        self.num = num
        self.err = err


def parse_bool(s: str) -> bool:
    """``strconv.ParseBool``."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise NumError("ParseBool", s, SYNTAX)


def _underscore_ok(s: str) -> bool:
    """strconv.underscoreOK: underscores only between digits, or after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if ("0" <= c <= "9") or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
        i += 1
    return saw != "_"


def parse_uint(s: str, base: int = 0, bits: int = 64, *, func: str = "ParseUint") -> int:
    """``strconv.ParseUint(s, base, bits)``: base 0 reads Go's prefixes (0x, 0o, 0b, 0) and
    underscores; an overflow is reported as soon as it happens, as Go does."""
    if s == "":
        raise NumError(func, s, SYNTAX)
    s0, base0 = s, base == 0
    if base0:
        base = 10
        if s[0] == "0":
            if len(s) >= 3 and s[1].lower() in "box":
                base, s = {"b": 2, "o": 8, "x": 16}[s[1].lower()], s[2:]
            else:
                base, s = 8, s[1:]
    limit = (1 << bits) - 1
    n = 0
    underscores = False
    for c in s:
        if c == "_" and base0:
            underscores = True
            continue
        d = int(c, 36) if c.isascii() and c.isalnum() else 99
        if d >= base:
            raise NumError(func, s0, SYNTAX)
        n = n * base + d
        if n > limit:
            raise NumError(func, s0, RANGE)
    if underscores and not _underscore_ok(s0):
        raise NumError(func, s0, SYNTAX)
    return n


def parse_int(s: str, base: int = 0, bits: int = 64, *, func: str = "ParseInt") -> int:
    """``strconv.ParseInt(s, base, bits)``: an optional sign, then :func:`parse_uint`'s rules."""
    if s == "":
        raise NumError(func, s, SYNTAX)
    neg = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    try:
        magnitude = parse_uint(body, base, bits)
    except NumError as e:
        raise NumError(func, s, e.err) from None
    cutoff = 1 << (bits - 1)
    if (not neg and magnitude >= cutoff) or (neg and magnitude > cutoff):
        raise NumError(func, s, RANGE)
    return -magnitude if neg else magnitude


def atoi(s: str) -> int:
    """``strconv.Atoi``: base 10, an optional sign, no underscores, a 64-bit int."""
    return parse_int(s, 10, 64, func="Atoi")


# --- time.Duration ---------------------------------------------------------------------------------

_UNITS_NS: Final = {
    "ns": 1,
    "us": 1000,
    "\u00b5s": 1000,  # micro sign
    "\u03bcs": 1000,  # Greek mu
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration_ns(text: str) -> int:
    """``time.ParseDuration``, in nanoseconds (an int64). ValueError carries Go's message."""

    def invalid() -> ValueError:
        return ValueError(f"time: invalid duration {quote(text)}")

    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise invalid()
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid()
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        pre = i > 0
        whole = int(s[:i]) if pre else 0
        s = s[i:]
        frac, scale, post = 0, 1, False
        if s.startswith("."):
            s = s[1:]
            j = 0
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            post = j > 0
            if post:
                frac, scale = int(s[:j]), 10**j
            s = s[j:]
        if not pre and not post:
            raise invalid()
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        if k == 0:
            raise ValueError(f"time: missing unit in duration {quote(text)}")
        unit_text, s = s[:k], s[k:]
        unit = _UNITS_NS.get(unit_text)
        if unit is None:
            raise ValueError(f"time: unknown unit {quote(unit_text)} in duration {quote(text)}")
        # Go: v += int64(float64(f) * (float64(unit) / scale))
        total += whole * unit + (int(frac * (unit / scale)) if frac else 0)
        if total > 1 << 63:
            raise invalid()
    if not neg and total > (1 << 63) - 1:
        raise invalid()
    return -total if neg else total


def parse_duration(text: str) -> float:
    """``time.ParseDuration`` in seconds, for Python's timeouts."""
    return parse_duration_ns(text) / 1e9


def format_duration(seconds: float) -> str:
    """``time.Duration.String()`` of a duration given in seconds (rounded to the nanosecond)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    u = abs(ns)
    if u < 10**9:
        if u < 1_000:
            text = f"{u}ns"
        elif u < 1_000_000:
            text = _frac(u, 1_000) + "µs"
        else:
            text = _frac(u, 1_000_000) + "ms"
    else:
        h, rem = divmod(u, 3600 * 10**9)
        m, rem = divmod(rem, 60 * 10**9)
        text = _frac(rem, 10**9) + "s"
        if h:
            text = f"{h}h{m}m" + text
        elif m:
            text = f"{m}m" + text
    return "-" + text if ns < 0 else text


def _frac(v: int, unit: int) -> str:
    whole, frac = divmod(v, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


# --- etcd's pkg/flags: flags from environment variables ---------------------------------------------


def env_var_name(prefix: str, flag: str) -> str:
    """``--initial-cluster-token`` -> ``ETCD_INITIAL_CLUSTER_TOKEN`` (prefix "ETCD")."""
    return prefix + "_" + flag.replace("-", "_").upper()


def env_conflict_error(key: str) -> str:
    """The error when a flag is given both on the command line and as ``key`` (verifyEnv)."""
    return (
        f"conflicting environment variable {quote(key)} is shadowed by corresponding command-line "
        "flag (either unset environment variable or disable flag)"
    )


def env_invalid_value_error(raw: str, key: str, why: object) -> str:
    """The error when environment variable ``key`` holds a value its flag rejects."""
    return f"invalid value {quote(raw)} for {key}: {why}"


# --- encoding/binary, go-humanize ------------------------------------------------------------

_U64: Final = (1 << 64) - 1


def put_uvarint(value: int) -> bytes:
    """``binary.PutUvarint(uint64(value))`` (also protobuf's varint: negatives take 10 bytes)."""
    v = value & _U64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def put_varint(n: int) -> bytes:
    """``binary.PutVarint``: zig-zag, then :func:`put_uvarint`."""
    return put_uvarint((n << 1) ^ (n >> 63))


def humanize_bytes(n: int) -> str:
    """go-humanize's ``Bytes`` (SI units): 20480 -> "20 kB"."""
    if n < 10:
        return f"{n} B"
    sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    e = math.floor(math.log(n) / math.log(1000))
    val = math.floor(n / (1000**e) * 10 + 0.5) / 10
    return f"{val:.1f} {sizes[e]}" if val < 10 else f"{val:.0f} {sizes[e]}"


class AddrError(ValueError):
    """Go's ``*net.AddrError``: ``address <addr>: <why>``."""


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: the port may be empty, IPv6 hosts need brackets."""

    def fail(why: str) -> AddrError:
        return AddrError(f"address {hostport}: {why}")

    missing_port = "missing port in address"
    too_many = "too many colons in address"
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        rest = hostport[end + 1 :]
        if rest == "":
            raise fail(missing_port)
        if rest[0] != ":":
            # Go distinguishes "]x" (missing port) from "]]:" (too many colons) like this.
            raise fail(too_many if ":" in rest else missing_port)
        if ":" in rest[1:]:
            raise fail(too_many)
        host, port = hostport[1:end], rest[1:]
        if "[" in host:
            raise fail("unexpected '[' in address")
        if "]" in port:
            raise fail("unexpected ']' in address")
        return host, port
    i = hostport.rfind(":")
    if i < 0:
        raise fail(missing_port)
    host, port = hostport[:i], hostport[i + 1 :]
    if ":" in host:
        raise fail(too_many)
    if "[" in host:
        raise fail("unexpected '[' in address")
    if "]" in host or "]" in port:
        raise fail("unexpected ']' in address")
    return host, port
