"""Atomic file writes: a temp file in the target folder, then a rename. An interrupted run leaves either
the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary_path)``, then move it onto ``path`` (the temp file is removed on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_json(path: Path, data: dict) -> None:
    write_atomically(path, lambda temp: temp.write_text(json.dumps(data, indent=2, default=str)))


def write_frame(frame, path: Path) -> None:
    """A pandas DataFrame as Parquet or CSV, by the file's suffix."""
    if Path(path).suffix == ".parquet":
        write_atomically(path, lambda temp: frame.to_parquet(temp, index=False))
    else:
        write_atomically(path, lambda temp: frame.to_csv(temp, index=False))
