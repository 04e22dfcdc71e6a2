"""The lab's copy of etcd's member-ID rule (minietcd/lab/ids.py) gives the server's IDs."""

from __future__ import annotations

import pytest

from minietcd.lab.ids import member_id
from minietcd.server import ids as server_ids
from minietcd.server.urls import parse_urls


@pytest.mark.parametrize(
    ("urls", "token"),
    [
        (["http://127.0.0.1:2380"], "etcd-cluster"),
        (["http://n3:2380"], "lab-token"),
        (["https://10.0.0.2:2380", "http://10.0.0.1:2380"], "t"),
        (["http://[::1]:7001"], ""),
    ],
)
def test_lab_member_ids_are_the_servers(urls: list[str], token: str) -> None:
    assert member_id(urls, token) == server_ids.member_id(parse_urls(urls), token)
