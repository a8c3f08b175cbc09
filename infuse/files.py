"""Files written completely or not at all.

Every file infuse writes goes to a temporary file in the same folder and is then renamed
over the target, so a crash or a kill never leaves half a file and never destroys the
previous version.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(temp_path)` to fill a temporary file beside `path`, then rename it into place.

    The file is readable by everyone (0644), like one written with `open()`. Returns `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        write(temp_name)
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: str | Path, payload: bytes) -> Path:
    """Write bytes atomically (see `write_atomic`)."""
    return write_atomic(path, lambda temp: Path(temp).write_bytes(payload))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (see `write_atomic`)."""
    return write_atomic(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
