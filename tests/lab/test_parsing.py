"""The lab's argument parsing: durations, links, partition groups, sizes (no processes)."""

from __future__ import annotations

import pytest

from minietcd.errors import LabError
from minietcd.lab.fault_table import parse_sizes, parse_variants
from minietcd.lab.faults import parse_duration_ms, parse_groups, parse_link


@pytest.mark.parametrize(
    ("text", "ms"), [("200ms", 200), ("1.5s", 1500), ("50", 50), ("0ms", 0), ("2500us", 2)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "1m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(LabError, match="bad duration"):
        parse_duration_ms(text)


def test_links_and_groups() -> None:
    assert parse_link("n1->n2") == ("n1", "n2")
    assert parse_link(" n3 -> n1 ") == ("n3", "n1")
    for bad in ("n1", "n1->", "->n2", "n1->n2->n3"):
        with pytest.raises(LabError, match="bad link"):
            parse_link(bad)
    assert parse_groups(["n1,n2", "n3,n4,n5"]) == [["n1", "n2"], ["n3", "n4", "n5"]]


def test_sizes_and_variants() -> None:
    assert parse_sizes("1-9") == list(range(1, 10))
    assert parse_sizes("1,3,5-6") == [1, 3, 5, 6]
    for bad in ("0-3", "5-10", "x", "3-1"):
        with pytest.raises(LabError):
            parse_sizes(bad)
    assert parse_variants("kill,partition") == ["kill", "partition"]
    with pytest.raises(LabError, match="unknown variant"):
        parse_variants("flood")
