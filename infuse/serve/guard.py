"""What a remote caller may add to the knowledge base: files under allowed roots, within size limits.

A server that adds files on request must never become a way to read the rest of the disk:
each path is resolved (`..` and symlinks followed) *before* it is checked, so `roots/../etc`
and a symlink inside a root that points outside are both refused. Sizes are checked on the
resolved files, per file and per request, and against a total for the server's lifetime.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from infuse.errors import ConfigError

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 500 * 1024 * 1024
DEFAULT_MAX_REQUEST_FILES = 1000


class PathNotAllowedError(ConfigError):
    """A path asked for by a client resolves outside the allowed roots (or is too big)."""


@dataclass
class AddGuard:
    """Checks paths a client asks to add; counts what was added (thread-safe)."""

    roots: list[Path] = field(default_factory=list)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_request_files: int = DEFAULT_MAX_REQUEST_FILES
    added_bytes: int = 0

    def __post_init__(self) -> None:
        self.roots = [Path(os.path.realpath(Path(root).expanduser())) for root in self.roots]
        self._lock = threading.Lock()

    def _root_of(self, resolved: Path) -> Path | None:
        for root in self.roots:
            if resolved == root or resolved.is_relative_to(root):
                return root
        return None

    def resolve(self, path: str) -> Path:
        """The real path of `path` (relative paths are taken from the first root), or
        PathNotAllowedError naming the path and the roots when it lies outside them."""
        if not self.roots:
            raise PathNotAllowedError(
                f"Adding files is off: this server has no allowed roots. Start it with "
                f"--allow-root FOLDER to let clients add files under FOLDER ({path!r} refused)."
            )
        if "\x00" in path:
            raise PathNotAllowedError(f"Path {path!r} holds a NUL byte; refused.")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        resolved = Path(os.path.realpath(candidate))
        if self._root_of(resolved) is None:
            roots = ", ".join(str(root) for root in self.roots)
            raise PathNotAllowedError(
                f"Path {path!r} resolves to {resolved}, outside the allowed roots ({roots}); "
                "only files under those folders can be added."
            )
        if not resolved.exists():
            raise PathNotAllowedError(f"Path {path!r} ({resolved}) does not exist.")
        return resolved

    def files(self, paths: list[str]) -> list[Path]:
        """Every file the request names (folders expanded), each resolved and inside a root,
        within the per-file, per-request and total limits. Raises PathNotAllowedError."""
        if not paths:
            raise PathNotAllowedError("No paths given; name at least one file or folder.")
        files: list[Path] = []
        for path in paths:
            resolved = self.resolve(path)
            if resolved.is_dir():
                for candidate in sorted(resolved.rglob("*")):
                    real = Path(os.path.realpath(candidate))
                    if real.is_file() and not any(
                        part.startswith(".") for part in candidate.relative_to(resolved).parts
                    ):
                        if self._root_of(real) is None:
                            raise PathNotAllowedError(
                                f"{candidate} (under {path!r}) links to {real}, outside the "
                                "allowed roots; remove the link or add files one by one."
                            )
                        files.append(real)
            else:
                files.append(resolved)
            if len(files) > self.max_request_files:
                raise PathNotAllowedError(
                    f"The request names more than {self.max_request_files} files; add fewer at once."
                )
        files = list(dict.fromkeys(files))
        request_bytes = 0
        for file in files:
            size = file.stat().st_size
            if size > self.max_file_bytes:
                raise PathNotAllowedError(
                    f"File {file} is {size:,} bytes, over the {self.max_file_bytes:,}-byte limit per "
                    "file (--max-file-mb)."
                )
            request_bytes += size
        if request_bytes > self.max_request_bytes:
            raise PathNotAllowedError(
                f"The request adds {request_bytes:,} bytes, over the {self.max_request_bytes:,}-byte "
                "limit per request (--max-request-mb); add fewer files at once."
            )
        with self._lock:
            if self.added_bytes + request_bytes > self.max_total_bytes:
                raise PathNotAllowedError(
                    f"Adding {request_bytes:,} bytes would pass this server's total of "
                    f"{self.max_total_bytes:,} bytes (--max-total-mb; {self.added_bytes:,} added so far)."
                )
            self.added_bytes += request_bytes
        return files
