"""Shared fixtures. Keep additions small: other test files rely on these too."""

from __future__ import annotations

import os
import tempfile

import pytest

# CLI runs inside tests (and their subprocesses) cache preprocessing here, never in ~/.cache.
os.environ.setdefault("RLCS_CACHE_DIR", tempfile.mkdtemp(prefix="rl-cs-test-cache-"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A per-session preprocessing cache folder, so tests never write to ~/.cache."""
    return tmp_path_factory.mktemp("rl-cs-cache")
