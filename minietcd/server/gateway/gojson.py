"""Go's ``encoding/json`` syntax rules and error texts, where etcd's gateway answers with them.

etcd's gateway decodes request bodies with Go's ``json.Decoder``, so a malformed body gets one of
Go's messages: ``invalid character 'b' looking for beginning of object key string``,
``unexpected EOF``... :func:`value_end` is a port of Go's scanner (``encoding/json/scanner.go``,
Go 1.19, the Go that builds Debian's etcd 3.4.23): it finds where the next JSON value ends in a
buffer, or raises :class:`GoJSONError` with Go's text. Strings are skipped by a regular
expression, so a large value costs little. :func:`go_base64` is ``base64.StdEncoding.Decode``
with its ``illegal base64 data at input byte N``; :func:`quote_char` is the scanner's
``quoteChar``.
"""

from __future__ import annotations

import re
from typing import Final

from minietcd.golang import quote

MAX_DEPTH: Final = 10000  # Go's maxNestingDepth
_SPACE: Final = b" \t\r\n"
_DIGITS: Final = b"0123456789"
_HEX: Final = b"0123456789abcdefABCDEF"
#: The run of a string's bytes that cannot end it or start an escape.
_PLAIN_STRING: Final = re.compile(rb'[^"\\\x00-\x1f]*')
_LITERALS: Final = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}


class GoJSONError(ValueError):
    """A body Go's decoder refuses; ``str()`` is Go's error text."""


class Incomplete(GoJSONError):
    """The input ended inside a value (Go: ``unexpected EOF`` from a Decoder, ``unexpected end
    of JSON input`` from Unmarshal)."""


def quote_char(c: int) -> str:
    """Go's ``quoteChar``: how the scanner names a byte in its messages."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    return "'" + quote(chr(c))[1:-1] + "'"


def _error(c: int, context: str) -> GoJSONError:
    return GoJSONError(f"invalid character {quote_char(c)} {context}")


def value_end(data: bytes, pos: int = 0) -> int:
    """The index just past the JSON value that starts at ``data[pos]`` (after spaces). Raises
    :class:`Incomplete` if ``data`` ends inside it, :class:`GoJSONError` if it is not JSON."""
    stack: list[int] = []  # ord('{') / ord('[') of the open containers
    n = len(data)
    i = _skip_space(data, pos)
    while True:
        # -- a value begins at i
        if i >= n:
            raise Incomplete("unexpected EOF")
        c = data[i]
        if c == 0x7B or c == 0x5B:  # { [
            if len(stack) >= MAX_DEPTH:
                raise GoJSONError("exceeded max depth")
            stack.append(c)
            i = _skip_space(data, i + 1)
            if i >= n:
                raise Incomplete("unexpected EOF")
            closing = 0x7D if c == 0x7B else 0x5D
            if data[i] == closing:
                stack.pop()
                i += 1
            elif c == 0x7B:
                i = _object_key(data, i)
                continue
            else:
                continue
        elif c == 0x22:
            i = _string_end(data, i)
        elif c == 0x2D or c in _DIGITS:
            i = _number_end(data, i)
        elif c in _LITERALS:
            i = _literal_end(data, i, _LITERALS[c])
        else:
            raise _error(c, "looking for beginning of value")
        # -- a value ended just before i: what may follow it
        while True:
            if not stack:
                return i
            i = _skip_space(data, i)
            if i >= n:
                raise Incomplete("unexpected EOF")
            c = data[i]
            if stack[-1] == 0x7B:
                if c == 0x2C:  # ,
                    i = _object_key(data, _skip_space(data, i + 1))
                    break
                if c == 0x7D:
                    stack.pop()
                    i += 1
                    continue
                raise _error(c, "after object key:value pair")
            if c == 0x2C:
                i = _skip_space(data, i + 1)
                break
            if c == 0x5D:
                stack.pop()
                i += 1
                continue
            raise _error(c, "after array element")


def _skip_space(data: bytes, i: int) -> int:
    n = len(data)
    while i < n and data[i] in _SPACE:
        i += 1
    return i


def _object_key(data: bytes, i: int) -> int:
    """At a key's opening quote (spaces skipped): past the ``:`` after it and the spaces."""
    if i >= len(data):
        raise Incomplete("unexpected EOF")
    if data[i] != 0x22:
        raise _error(data[i], "looking for beginning of object key string")
    i = _skip_space(data, _string_end(data, i))
    if i >= len(data):
        raise Incomplete("unexpected EOF")
    if data[i] != 0x3A:
        raise _error(data[i], "after object key")
    return _skip_space(data, i + 1)


def _string_end(data: bytes, i: int) -> int:
    n = len(data)
    i += 1
    while True:
        m = _PLAIN_STRING.match(data, i)
        i = m.end() if m else i
        if i >= n:
            raise Incomplete("unexpected EOF")
        c = data[i]
        if c == 0x22:
            return i + 1
        if c < 0x20:
            raise _error(c, "in string literal")
        # a backslash
        i += 1
        if i >= n:
            raise Incomplete("unexpected EOF")
        c = data[i]
        if c in b'bfnrt\\/"':
            i += 1
        elif c == ord("u"):
            for k in range(1, 5):
                if i + k >= n:
                    raise Incomplete("unexpected EOF")
                if data[i + k] not in _HEX:
                    raise _error(data[i + k], "in \\u hexadecimal character escape")
            i += 5
        else:
            raise _error(c, "in string escape code")


def _number_end(data: bytes, i: int) -> int:
    n = len(data)

    def digits(j: int) -> int:
        while j < n and data[j] in _DIGITS:
            j += 1
        return j

    if data[i] == 0x2D:
        i += 1
        if i >= n:
            raise Incomplete("unexpected EOF")
        if data[i] not in _DIGITS:
            raise _error(data[i], "in numeric literal")
    i = i + 1 if data[i] == 0x30 else digits(i)
    if i < n and data[i] == 0x2E:
        i += 1
        if i >= n:
            raise Incomplete("unexpected EOF")
        if data[i] not in _DIGITS:
            raise _error(data[i], "after decimal point in numeric literal")
        i = digits(i)
    if i < n and data[i] in b"eE":
        i += 1
        if i < n and data[i] in b"+-":
            i += 1
        if i >= n:
            raise Incomplete("unexpected EOF")
        if data[i] not in _DIGITS:
            raise _error(data[i], "in exponent of numeric literal")
        i = digits(i)
    return i  # a number at the very end is complete (Go's eof() steps one space)


def _literal_end(data: bytes, i: int, word: bytes) -> int:
    name = word.decode()
    for k in range(1, len(word)):
        if i + k >= len(data):
            raise Incomplete("unexpected EOF")
        if data[i + k] != word[k]:
            raise _error(data[i + k], f"in literal {name} (expecting {quote_char(word[k])})")
    return i + len(word)


def check_valid(data: bytes) -> None:
    """Go's ``json.Unmarshal`` syntax check of a whole input: one value, then only spaces."""
    try:
        end = value_end(data)
    except Incomplete:
        raise GoJSONError("unexpected end of JSON input") from None
    rest = _skip_space(data, end)
    if rest < len(data):
        raise _error(data[rest], "after top-level value")


# --- encoding/base64 ------------------------------------------------------------------------------

_B64: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE: Final = {c: v for v, c in enumerate(_B64)}


def go_base64(src: bytes) -> bytes:
    """``base64.StdEncoding.Decode``: padding required, ``\\r``/``\\n`` ignored anywhere.
    Raises :class:`GoJSONError` with ``illegal base64 data at input byte N``."""
    out = bytearray()
    si, n = 0, len(src)
    while si < n:
        quantum: list[int] = []
        while len(quantum) < 4:
            if si == n:
                if not quantum:
                    return bytes(out)
                raise _corrupt(si - len(quantum))  # a partial quantum without its padding
            c = src[si]
            si += 1
            if c in _B64_VALUE:
                quantum.append(_B64_VALUE[c])
                continue
            if c in b"\r\n":
                continue
            if c != ord("=") or len(quantum) < 2:
                raise _corrupt(si - 1)
            if len(quantum) == 2:  # "==" expected: the first "=" is consumed
                while si < n and src[si] in b"\r\n":
                    si += 1
                if si == n:
                    raise _corrupt(n)
                if src[si] != ord("="):
                    raise _corrupt(si - 1)
                si += 1
            while si < n and src[si] in b"\r\n":
                si += 1
            if si < n:
                raise _corrupt(si)  # trailing garbage after the padding
            break
        val = 0
        for k in range(4):
            val = (val << 6) | (quantum[k] if k < len(quantum) else 0)
        out += val.to_bytes(3, "big")[: len(quantum) - 1]
        if len(quantum) < 4:
            return bytes(out)
    return bytes(out)


def _corrupt(at: int) -> GoJSONError:
    return GoJSONError(f"illegal base64 data at input byte {at}")
