"""Go's output formatting where etcdctl's output depends on it.

etcdctl prints with Go's ``encoding/json``, ``text/tabwriter`` and olekukonko/tablewriter;
matching it byte for byte means matching their rules: JSON string escaping and ``[]byte`` as
base64 (:func:`json_dumps`), protobuf structs as Go encodes them (:func:`pb_to_go`),
``text/tabwriter`` (:func:`tabwrite`) and the table renderer (:func:`render_table`). Go's
``strconv``, ``time.Duration`` and go-humanize rules, which the server shares, are in
:mod:`minietcd.golang`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from minietcd.golang import decode_rune


def go_string(b: bytes) -> str:
    """A Go ``string(bytes)`` written to a terminal: the bytes as they are."""
    return b.decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------- JSON


def _json_string(s: str | bytes) -> str:
    data = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    out = ['"']
    i = 0
    while i < len(data):
        ch, size = decode_rune(data, i)
        if ch is None:
            out.append("\\ufffd")
            i += 1
            continue
        i += size
        if ch == 0x22:
            out.append('\\"')
        elif ch == 0x5C:
            out.append("\\\\")
        elif ch == 0x0A:
            out.append("\\n")
        elif ch == 0x0D:
            out.append("\\r")
        elif ch == 0x09:
            out.append("\\t")
        elif ch < 0x20 or ch in (0x3C, 0x3E, 0x26):
            out.append(f"\\u00{ch:02x}")
        elif ch in (0x2028, 0x2029):
            out.append(f"\\u{ch:04x}")
        else:
            out.append(chr(ch))
    out.append('"')
    return "".join(out)


class GoBytes(bytes):
    """A Go ``[]byte``: encoded as base64 in JSON."""


def json_dumps(v: Any) -> str:
    """Go's ``json.Marshal`` of ``v`` built from dicts (ordered), lists, str, bytes (base64),
    int, float, bool and None."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes):
        return '"' + base64.b64encode(v).decode() + '"'
    if isinstance(v, str):
        return _json_string(v)
    if isinstance(v, dict):
        return "{" + ",".join(_json_string(k) + ":" + json_dumps(x) for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(json_dumps(x) for x in v) + "]"
    raise TypeError(f"cannot encode {type(v).__name__}")


def camel_case(name: str) -> str:
    """protoc-gen-gogo's Go name for a proto field or oneof name."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def _is_empty(msg: Message, f: Any) -> bool:
    if f.is_repeated:
        return len(getattr(msg, f.name)) == 0
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return not msg.HasField(f.name)
    return not getattr(msg, f.name)


def _value_to_go(f: Any, v: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return pb_to_go(v)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return bytes(v)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return int(v)
    return v


def pb_to_go(msg: Message) -> dict[str, Any]:
    """A protobuf message as Go's encoding/json renders the gogo-generated struct etcdctl
    prints: fields in declaration order, named as in the .proto, zero values omitted
    (``omitempty``), ``bytes`` as base64, enums as numbers; a oneof is one field named after it
    (CamelCase, never omitted) holding ``{"<CamelCase member>": value}``."""
    out: dict[str, Any] = {}
    seen_oneofs: set[str] = set()
    for f in msg.DESCRIPTOR.fields:
        oneof = f.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
            which = msg.WhichOneof(oneof.name)
            if which is None:
                out[camel_case(oneof.name)] = None
            else:
                wf = msg.DESCRIPTOR.fields_by_name[which]
                out[camel_case(oneof.name)] = {camel_case(which): _value_to_go(wf, getattr(msg, which))}
            continue
        if _is_empty(msg, f):
            continue
        v = getattr(msg, f.name)
        if f.is_repeated:
            out[f.name] = [_value_to_go(f, x) for x in v]
        else:
            out[f.name] = _value_to_go(f, v)
    return out


# --------------------------------------------------------------------------- tabwriter


def tabwrite(text: str, tabwidth: int = 8, padding: int = 1) -> str:
    """Go's ``text/tabwriter`` with minwidth 0, padchar '\\t' and no flags (etcdctl's usage)."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def pad(textw: int, cellw: int) -> str:
        cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
        return "\t" * ((cellw - textw + tabwidth - 1) // tabwidth)

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, c in enumerate(cells):
                if j < len(cells) - 1 and j < len(widths):
                    parts.append(c + pad(len(c), widths[j]))
                else:
                    parts.append(c)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = 0
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)


# ------------------------------------------------------------------------------ tables


def _wrap_words(words: list[str], lim: int, pen: int = 100_000) -> list[list[str]]:
    n = len(words)
    length = [[0] * n for _ in range(n)]
    for i in range(n):
        length[i][i] = len(words[i])
        for j in range(i + 1, n):
            length[i][j] = length[i][j - 1] + 1 + len(words[j])
    nbrk = [0] * n
    cost = [2**31 - 1] * n
    for i in range(n - 1, -1, -1):
        if length[i][n - 1] <= lim:
            cost[i] = 0
            nbrk[i] = n
        else:
            for j in range(i + 1, n):
                d = lim - length[i][j - 1]
                c = d * d + cost[j]
                if length[i][j - 1] > lim:
                    c += pen
                if c < cost[i]:
                    cost[i] = c
                    nbrk[i] = j
    lines = []
    i = 0
    while i < n:
        lines.append(words[i : nbrk[i]])
        i = nbrk[i]
    return lines


def _wrap_string(s: str, lim: int) -> list[str]:
    words = s.replace("\n", " ").split(" ")
    for w in words:
        lim = max(lim, len(w))
    return [" ".join(line) for line in _wrap_words(words, lim)]


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """olekukonko/tablewriter as etcdctl uses it: upper-case centred headers, right-aligned
    cells, cells wider than 30 columns wrapped at spaces, a border around everything."""
    max_w = 30
    ncol = len(header)
    cs: dict[int, int] = {}
    heads = [h.replace("_", " ").replace(".", " ").strip().upper() for h in header]
    for i, h in enumerate(heads):
        w = min(len(h), max_w)
        if cs.get(i, 0) < w or cs.get(i) == 0:
            cs[i] = w
    cells: list[list[list[str]]] = []
    for row in rows:
        lines_row = []
        for i, text in enumerate(row):
            w = min(len(text), max_w)
            if i not in cs or cs[i] < w or cs[i] == 0:
                cs[i] = w
            raw = _wrap_string(text, cs[i])
            cs[i] = max(cs[i], max((len(x) for x in raw), default=0))
            lines_row.append(raw)
        cells.append(lines_row)
    sep = "+" + "+".join("-" * (cs[i] + 2) for i in range(ncol)) + "+"
    out = [sep]

    def centre(s: str, w: int) -> str:
        gap = w - len(s)
        left = gap // 2
        return " " * left + s + " " * (gap - left)

    out.append("|" + "|".join(" " + centre(heads[i], cs[i]) + " " for i in range(ncol)) + "|")
    out.append(sep)
    for row_lines in cells:
        height = max((len(c) for c in row_lines), default=1)
        for k in range(height):
            parts = []
            for i in range(ncol):
                text = row_lines[i][k] if k < len(row_lines[i]) else ""
                parts.append(" " + text.rjust(cs[i]) + " ")
            out.append("|" + "|".join(parts) + "|")
    out.append(sep)
    return "\n".join(out) + "\n"
