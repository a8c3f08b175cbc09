"""The one road from files to text: `find_files` names what to read, `read_paths` reads it.

Every part of infuse that turns files into text (the knowledge base, CAG, question
generation, eval, quickstart) calls these, so they all see the same documents and name the
same files as skipped, each with its reason.

Folders are searched recursively (following symbolic links once; a folder reached twice, or
through a link, is read once, under its real path). Hidden files and folders (`.git`, ...)
are left out. Inside folders a file is read when its suffix is a document type
(`SUPPORTED_SUFFIXES`), a man page (`.1`..`.9`, `.gz` too), or when it has no suffix or a
README-style name and its content is text; any other file is named in `skipped` with the
reason. A file named directly or matched by a glob is always tried.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.knowledge.cleaning import looks_binary
from infuse.knowledge.documents import Document
from infuse.knowledge.readers import (
    SUPPORTED_SUFFIXES,
    RowOptions,
    check_name,
    is_document_name,
    is_man_page_name,
    read_file,
)

__all__ = ["ReadResult", "find_files", "read_file", "read_paths"]


@dataclass
class ReadResult:
    """What `read_paths` read: the documents, the files they came from, what was skipped and why.

    `skipped` and `warnings` hold `{"path", "reason"}` and `{"path", "warning"}` dicts.
    """

    documents: list[Document] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (documents without their text, which can be large)."""
        return {
            "files": [str(path) for path in self.files],
            "documents": [
                {
                    "doc_id": document.doc_id,
                    "source": document.source,
                    "title": document.title,
                    "characters": len(document.text),
                }
                for document in self.documents
            ],
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
        }


def _shown(path: str | Path) -> str:
    """A path as text that can always be printed (undecodable name bytes become U+FFFD)."""
    return os.fsencode(str(path)).decode("utf-8", errors="replace")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


_EXTENSION = re.compile(r"^\.[a-z0-9]{1,6}$")


def _folder_verdict(path: Path) -> str | None:
    """Why a file found in a folder is not read (None: read it)."""
    name = path.name
    inner = name[:-3] if name.lower().endswith(".gz") else name
    suffix = Path(inner).suffix.lower()
    if not _EXTENSION.match(suffix):
        suffix = ""  # "git-doc.git-user-manual", "notes.2024-01": a name, not a type
    if name.lower().endswith(".gz") and not (
        suffix in SUPPORTED_SUFFIXES
        or is_man_page_name(inner)
        or is_document_name(inner)
        or not suffix
    ):
        return f"{_shown(path)}: compressed file of an unknown type; pass it by name to try it."
    if suffix in SUPPORTED_SUFFIXES or is_man_page_name(inner):
        return None
    if suffix and not is_document_name(inner):
        return (
            f"{_shown(path)}: not a document type ({suffix}); name it (or a glob such as "
            f"'DIR/**/*{suffix}') to read it as text."
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as error:
        return f"{_shown(path)}: cannot be read ({error.strerror or error}); skipped."
    if not head:
        return f"{_shown(path)}: empty file (0 bytes); skipped."
    if head[:2] != b"\x1f\x8b" and head[:5] != b"%PDF-" and looks_binary(head):
        return f"{_shown(path)}: binary file, not text; skipped."
    return None


def _walk(folder: Path, skipped: list[dict[str, str]]) -> list[Path]:
    """Files under `folder` worth reading, sorted; the others go to `skipped` with a reason."""
    found: list[Path] = []
    seen_folders: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_folders:
            dirs[:] = []
            continue
        seen_folders.add(real)
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            if not path.is_file():
                skipped.append(
                    {
                        "path": _shown(path),
                        "reason": f"{_shown(path)}: not a regular file (a broken link?); skipped.",
                    }
                )
                continue
            reason = _folder_verdict(path)
            if reason:
                skipped.append({"path": _shown(path), "reason": reason})
            else:
                found.append(path)
    return found


def find_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files named by paths, folders (searched recursively) and globs.

    Returns (real absolute paths in the order given, each once; skipped `{"path", "reason"}`
    for names that match nothing, files in folders that are not documents, and names that
    are not valid UTF-8).
    """
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    for pattern in paths:
        path = Path(pattern).expanduser()
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = _walk(path, skipped)
        else:
            found = sorted(
                Path(match)
                for match in glob.glob(str(path), recursive=True)
                if Path(match).is_file()
            )
            if not found:
                skipped.append(
                    {
                        "path": _shown(pattern),
                        "reason": f"{_shown(pattern)}: no such file, folder or matching files.",
                    }
                )
        for candidate in found:
            try:
                check_name(candidate)
            except DataError as error:
                skipped.append({"path": _shown(candidate), "reason": str(error)})
                continue
            files.append(_real(Path(os.path.abspath(candidate))))
    return list(dict.fromkeys(files)), skipped


def read_paths(
    paths: Iterable[str | Path],
    *,
    row_options: RowOptions | None = None,
    on_progress: Callable[..., None] | None = None,
) -> ReadResult:
    """Read files, folders and globs into documents; unreadable, binary, empty and unknown
    files are named in `skipped` with the reason (never raised).

    `on_progress(done, total, path=...)` is called after each file.
    """
    files, skipped = find_files(paths)
    result = ReadResult(skipped=skipped, files=files)
    for done, path in enumerate(files, start=1):
        try:
            documents = read_file(path, row_options, warnings=result.warnings)
        except DataError as error:
            result.skipped.append({"path": str(path), "reason": str(error)})
            documents = []
        else:
            kept = [document for document in documents if document.text.strip()]
            if not kept:
                result.skipped.append(
                    {"path": str(path), "reason": f"{path}: no text found; skipped."}
                )
            result.documents += kept
        if on_progress is not None:
            on_progress(done, len(files), path=str(path))
    return result
