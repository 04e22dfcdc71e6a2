"""A flag's text becomes its value (Go's ``flag.Value.Set`` for each :class:`~.spec.Kind`), and
the state a parse builds up before it becomes a :class:`~.model.Config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from minietcd.errors import ConfigError
from minietcd.golang import SYNTAX, NumError, parse_bool, parse_duration_ns, parse_int, parse_uint
from minietcd.server.config.spec import FlagSpec, Kind
from minietcd.server.config.table import DEFAULTS, FLAGS
from minietcd.server.urls import parse_urls


def ns_to_timedelta(ns: int) -> timedelta:
    """A Go duration (nanoseconds) as a timedelta, truncated to the microsecond."""
    return timedelta(microseconds=ns // 1000)


class SetError(Exception):
    """A flag.Value.Set failure; the text is what Go's flag package appends after ': '."""


def go_flag_bool(s: str) -> bool:
    """Go's flag package reports every strconv.ParseBool failure as "parse error"."""
    try:
        return parse_bool(s)
    except NumError:
        raise SetError("parse error") from None


_INT_BITS: Final = {
    Kind.UINT: (False, 64),
    Kind.UINT64: (False, 64),
    Kind.INT: (True, 64),
    Kind.INT64: (True, 64),
}


def convert(spec: FlagSpec, raw: str, current: Any) -> Any:
    """``flag.Value.Set`` for ``spec``: the new value, or SetError with Go's error text."""
    kind = spec.kind
    if kind is Kind.STRING:
        return raw
    if kind is Kind.BOOL:
        return go_flag_bool(raw)
    if kind in _INT_BITS:
        signed, bits = _INT_BITS[kind]
        try:
            return parse_int(raw, 0, bits) if signed else parse_uint(raw, 0, bits)
        except NumError as e:
            # Go's flag package reduces strconv errors to these two texts.
            raise SetError("parse error" if e.err == SYNTAX else "value out of range") from None
    if kind is Kind.UINT32:
        try:
            return parse_uint(raw, 0, 32)
        except NumError as e:  # pkg/flags' uint32Value shows strconv's own text
            raise SetError(str(e)) from None
    if kind is Kind.DURATION:
        try:
            return ns_to_timedelta(parse_duration_ns(raw))
        except ValueError:
            raise SetError("parse error") from None
    if kind is Kind.URLS:
        if raw == "":
            # UniqueURLs' allowed exception: recorded, but the URL list is left as it was.
            return current
        try:
            return tuple(parse_urls(raw))
        except ConfigError as e:
            raise SetError(str(e)) from None
    if kind is Kind.CORS:
        if raw in current:
            return current
        if raw == "*":
            return tuple(sorted({*current, "*"}))
        try:
            return tuple(sorted({str(u) for u in parse_urls(raw)}))
        except ConfigError as e:
            raise SetError(str(e)) from None
    if kind is Kind.CHOICE:
        if raw not in spec.choices:
            raise SetError("invalid value")
        return raw
    if kind is Kind.STRINGS:
        return tuple(raw.split(","))
    if kind is Kind.UNIQUE_STRINGS:
        return tuple(sorted(set(raw.split(","))))
    raise AssertionError(f"unhandled kind {kind}")  # pragma: no cover - IGNORED handled by caller


@dataclass(slots=True)
class ParseState:
    """Mutable state while parsing; becomes a Config at the end."""

    values: dict[str, Any]  # by flag name
    explicit: list[str] = field(default_factory=list)
    env_used: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def apply(self, spec: FlagSpec, raw: str) -> None:
        if spec.kind is Kind.IGNORED:
            self.warnings.append(f'flag "-{spec.name}" is no longer supported - ignoring.')
            return
        self.values[spec.name] = convert(spec, raw, self.values[spec.name])

    def mark(self, name: str) -> None:
        if name not in self.explicit:
            self.explicit.append(name)


def flag_defaults() -> dict[str, Any]:
    """Every flag's value, by flag name, before the command line or environment sets any."""
    values = {s.name: DEFAULTS[s.attr] for s in FLAGS if s.kind is not Kind.IGNORED}
    values["data-dir"] = ""  # etcd's flag default; "<name>.etcd" is filled in after parsing
    return values
