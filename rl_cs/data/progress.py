"""Progress lines on stderr for preprocessing steps that take more than a moment."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


@contextmanager
def step(message: str):
    """Say what a slow step is doing before it starts and how long it took when it ends (stderr,
    so that results printed on stdout stay clean)."""
    print(f"rl-cs: {message} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"rl-cs: {message}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
