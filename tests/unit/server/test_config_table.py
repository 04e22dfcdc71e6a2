"""The flag table (minietcd/server/config/table.py) is consistent with itself: every typed
default is a value its Go kind can hold, choices contain their default, config-file keys and
env vars are unique. (What it parses to is tested in test_config.py; --help against real etcd
in tests/compat/test_member_id_matches_etcd.py.)"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from minietcd.server.config import FLAGS, Config, FlagSpec, Kind
from minietcd.server.urls import URL

_INT_RANGES = {
    Kind.UINT: (0, 2**64 - 1),
    Kind.UINT64: (0, 2**64 - 1),
    Kind.UINT32: (0, 2**32 - 1),
    Kind.INT: (-(2**63), 2**63 - 1),
    Kind.INT64: (-(2**63), 2**63 - 1),
}
TABLE = [s for s in FLAGS if s.kind is not Kind.IGNORED]


@pytest.mark.parametrize("spec", TABLE, ids=[s.name for s in TABLE])
def test_default_fits_the_kind(spec: FlagSpec) -> None:
    d = spec.default
    if spec.kind in (Kind.STRING, Kind.CHOICE):
        assert isinstance(d, str)
    elif spec.kind is Kind.BOOL:
        assert isinstance(d, bool)
    elif spec.kind in _INT_RANGES:
        lo, hi = _INT_RANGES[spec.kind]
        assert isinstance(d, int) and not isinstance(d, bool) and lo <= d <= hi
    elif spec.kind is Kind.DURATION:
        assert isinstance(d, timedelta)
    elif spec.kind is Kind.URLS:
        assert isinstance(d, tuple) and all(isinstance(u, URL) for u in d)
    else:
        assert spec.kind in (Kind.CORS, Kind.STRINGS, Kind.UNIQUE_STRINGS)
        assert isinstance(d, tuple) and all(isinstance(x, str) for x in d)
    if spec.kind is Kind.CHOICE:
        assert d in spec.choices
    assert getattr(Config(), spec.attr) == d


def test_keys_are_unique_and_ignored_flags_have_no_field() -> None:
    yaml_keys = [s.yaml_key for s in FLAGS if s.yaml_key is not None]
    assert len(yaml_keys) == len(set(yaml_keys))
    assert len({s.env_var for s in FLAGS}) == len(FLAGS)
    fields = {f.name for f in dataclasses.fields(Config)}
    assert not {s.attr for s in FLAGS if s.kind is Kind.IGNORED} & fields
    assert all(s.yaml_key is None for s in FLAGS if s.kind is Kind.IGNORED)
