"""Files written completely or not at all, and the one JSONL reader.

Every file infuse writes goes to a temporary file in the same folder and is then renamed
over the target, so a crash or a kill never leaves half a file and never destroys the
previous version. Every JSONL file infuse reads goes through `read_jsonl`, so a bad line is
reported the same way everywhere (file, line, what is wrong, the fix).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.errors import DataError


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


def parse_jsonl(text: str, path: str | Path, *, objects: bool = True) -> list[tuple[int, Any]]:
    """Parse JSONL text read from `path`: (line number, value) for each non-blank line.

    With `objects` (the default) every line must be a JSON object. Raises DataError naming the
    file, the line and the fix; this is the one wording of JSONL errors in infuse.
    """
    rows: list[tuple[int, Any]] = []
    # split on "\n" only: U+2028 and friends may stand raw inside a JSON string
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {number}: invalid JSON ({error.msg} at column {error.colno}); "
                "each line must be one JSON object: fix or remove that line."
            ) from None
        if objects and not isinstance(value, dict):
            raise DataError(
                f"{path}, line {number}: expected a JSON object per line, got "
                f"{type(value).__name__}; fix or remove that line."
            )
        rows.append((number, value))
    return rows


def read_jsonl(path: str | Path, *, objects: bool = True) -> list[tuple[int, Any]]:
    """Read a JSONL file: (line number, value) for each non-blank line (see `parse_jsonl`).

    Raises DataError for a missing or unreadable file, text that is not UTF-8, or a bad line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}).") from None
    return parse_jsonl(decode_utf8(raw, path), path, objects=objects)


def decode_utf8(raw: bytes, path: str | Path) -> str:
    """`raw` (the bytes of file `path`) as text; a BOM is dropped. DataError naming the line
    when it is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte {error.start}); re-save the file as "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None
def check_writable_folder(folder: str | Path, *, setting: str = "the output folder") -> Path:
    """Create `folder` if needed and prove a file can be written there, before any work starts.

    Raises ConfigError naming the folder, the reason and `setting` (what to change).
    """
    from infuse.errors import ConfigError

    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".infuse-write-check.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"Cannot write to {folder} ({reason}). Choose another {setting}, "
                          "or fix its permissions.") from None
    return folder


def remove_stale_temps(path: str | Path, *, older_than_s: float = 60.0) -> list[Path]:
    """Delete temporary files `write_atomic` left beside `path` when its writer was killed.

    Only temps of this very file name untouched for `older_than_s` seconds go (a live writer
    keeps touching its own). Returns what was removed.
    """
    import time

    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for temp in path.parent.glob(f".{path.name}.*"):
        try:
            if temp.is_file() and temp.stat().st_mtime < cutoff:
                temp.unlink()
                removed.append(temp)
        except OSError:
            continue
    return removed


class FolderLock:
    """An exclusive lock file held while one process writes a folder (`with FolderLock(...)`).

    A second writer fails at once with BusyError naming the folder; the OS drops the lock
    when the holder dies, so a killed run never leaves the folder locked.
    """

    def __init__(self, lock_path: str | Path, *, what: str) -> None:
        from filelock import FileLock

        self.path = Path(lock_path)
        self.what = what
        self._lock = FileLock(str(self.path))

    def __enter__(self) -> FolderLock:
        from filelock import Timeout

        from infuse.errors import BusyError

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise BusyError(f"{self.what} is in use by another process (lock {self.path}). "
                            "Wait for it to finish, or use another folder.") from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
