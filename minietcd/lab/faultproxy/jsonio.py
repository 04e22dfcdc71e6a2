"""Decode request bodies the way Go's ``encoding/json`` decodes into structs.

Toxiproxy is lenient in Go's particular way: unknown keys are ignored, keys
match field names case-insensitively, ``null`` leaves a field at its default,
only the first JSON value in the body is read, and a value of the wrong type
is a 400. Mirroring that keeps requests that work against the real server
working here, and requests it rejects rejected here.
"""

from __future__ import annotations

import json
from typing import Any

from minietcd.lab.faultproxy.apierror import BAD_REQUEST_BODY, ApiError

_MISSING = object()


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; Go's does not.
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode_body(raw: bytes) -> Any:
    """Parse the first JSON value of ``raw`` or raise a 400 ``ApiError``."""
    text = raw.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        value, _end = _DECODER.raw_decode(text)
    except (json.JSONDecodeError, ValueError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise BAD_REQUEST_BODY.joined(detail) from None
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_error(value: Any, where: str, go_type: str) -> ApiError:
    return BAD_REQUEST_BODY.joined(
        f"json: cannot unmarshal {_json_kind(value)} into Go {where} of type {go_type}"
    )


def as_object(value: Any, go_type: str) -> dict[str, Any]:
    """A JSON object, with ``null`` read as an empty one (Go leaves the struct zero)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise type_error(value, "value", go_type)
    return value


def lookup(obj: dict[str, Any], name: str) -> Any:
    """The value Go would decode into field ``name``, or ``_MISSING``.

    Go walks the keys in order and assigns every key that matches the field
    exactly or case-insensitively, so the last such key wins.
    """
    found: Any = _MISSING
    for key, value in obj.items():
        if key == name or key.lower() == name:
            found = value
    return found


def get_str(obj: dict[str, Any], name: str, default: str, where: str) -> str:
    value = lookup(obj, name)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, str):
        raise type_error(value, f"struct field {where}.{name}", "string")
    return value


def get_bool(obj: dict[str, Any], name: str, default: bool, where: str) -> bool:
    value = lookup(obj, name)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, bool):
        raise type_error(value, f"struct field {where}.{name}", "bool")
    return value


def get_optional_bool(obj: dict[str, Any], name: str, where: str) -> bool | None:
    value = lookup(obj, name)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, bool):
        raise type_error(value, f"struct field {where}.{name}", "bool")
    return value


def get_int(obj: dict[str, Any], name: str, default: int, where: str) -> int:
    value = lookup(obj, name)
    if value is _MISSING or value is None:
        return default
    # Go refuses to put 1.5, or even 1.0, into an int64 field.
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(value, f"struct field {where}.{name}", "int64")
    return value


def get_float(obj: dict[str, Any], name: str, default: float, where: str) -> float:
    value = lookup(obj, name)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error(value, f"struct field {where}.{name}", "float32")
    return float(value)


def get_raw(obj: dict[str, Any], name: str) -> Any:
    """The raw value for ``name``; ``None`` when absent or null."""
    value = lookup(obj, name)
    return None if value is _MISSING else value
