"""Shared fixtures. Keep additions small: other test files rely on these too."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A per-session preprocessing cache folder, so tests never write to ~/.cache."""
    return tmp_path_factory.mktemp("rl-cs-cache")
