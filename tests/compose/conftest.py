"""Fixtures of the compose tests: docker, compose and the images, checked (and built) once."""

from __future__ import annotations

import pytest

from tests.compose.docker_env import Tools, make_tools


@pytest.fixture(scope="session")
def tools() -> Tools:
    return make_tools()
