"""Where documents come from, and how `KnowledgeBase.sync` learns what changed or went away.

A document's source is a file path, a URL or any other id. `source_kind` names which, and
`sync` asks one `SourceRefresher` per kind: the file refresher is built in (re-read the file
the way it was added; a file that no longer exists is gone), the crawler supplies the one for
URLs (a page that answers 404/410 is gone), and plain text ids have none, so `sync` never
removes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from infuse.errors import DataError, StoreError
from infuse.knowledge.documents import Document, DocumentRecord
from infuse.knowledge.readers import RowOptions, read_file

FILE, URL, TEXT = "file", "url", "text"
EXTRA_METADATA = "metadata"  # key in reader_options: metadata given at add time (`--meta`)
SAFE_SHARE = 0.25  # sync removes at most this share of the documents without `prune`


def source_kind(source: str) -> str:
    """`"url"` for http(s) URLs, `"file"` for absolute paths (files are stored that way), else `"text"`."""
    if source.startswith(("http://", "https://")):
        return URL
    if os.path.isabs(source):
        return FILE
    return TEXT


@dataclass
class RefreshResult:
    """What a refresher found for the records it was given.

    `documents`: the current documents of every source that changed or may have (a source
    listed here is replaced: its stored documents missing from this list are removed);
    a source in neither list is unchanged. `gone`: sources that no longer exist.
    `skipped`: `{"path", "reason"}` for sources that could not be checked (kept as they are).
    """

    documents: list[Document] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


@runtime_checkable
class SourceRefresher(Protocol):
    """Re-checks the sources of one kind (`kind`) for `KnowledgeBase.sync`."""

    kind: str

    def refresh(self, records: list[DocumentRecord]) -> RefreshResult:
        """The current state of the sources of `records` (see `RefreshResult`)."""
        ...


def _row_options(options: dict[str, Any]) -> RowOptions | None:
    known = {item.name for item in fields(RowOptions)}
    chosen = {key: value for key, value in options.items() if key in known}
    return RowOptions(**chosen) if chosen else None


def read_source_file(
    path: Path, reader_options: dict[str, Any] | None = None, *, warnings: list[dict] | None = None
) -> list[Document]:
    """Read one file the way `reader_options` (as stored with its documents) says; DataError if unreadable.
    `warnings` collects files read only in part (see `read_file`).

    Metadata given at add time (`reader_options["metadata"]`) is put back on every document, so a
    re-read file keeps it and hashes the same.
    """
    options = dict(reader_options or {})
    extra = options.pop(EXTRA_METADATA, None) or {}
    documents = read_file(path, _row_options(options), warnings=warnings)
    if extra:
        for document in documents:
            document.metadata.update(extra)
            document.reader_options = {**document.reader_options, EXTRA_METADATA: dict(extra)}
    return documents


class FileRefresher:
    """The built-in refresher for files: read each one again; a file that no longer exists is gone."""

    kind = FILE

    def missing(self, records: list[DocumentRecord]) -> list[str]:
        """Sources of `records` whose file no longer exists (cheap: no reading)."""
        return sorted({record.source for record in records if not Path(record.source).is_file()})

    def refresh(
        self,
        records: list[DocumentRecord],
        on_source: Callable[[str], None] | None = None,
    ) -> RefreshResult:
        """Re-read every source file of `records`; `on_source(source)` after each one."""
        options_by_source: dict[str, dict[str, Any]] = {}
        for record in records:
            options_by_source.setdefault(record.source, record.reader_options)
        result = RefreshResult()
        for source, options in options_by_source.items():
            path = Path(source)
            if not path.is_file():
                result.gone.append(source)
            else:
                try:
                    documents = read_source_file(path, options)
                except DataError as error:
                    result.skipped.append({"path": source, "reason": str(error)})
                else:
                    if any(document.text.strip() for document in documents):
                        result.documents += documents
                    else:
                        result.skipped.append(
                            {"path": source, "reason": f"{source}: no text found; kept as it was."}
                        )
            if on_source is not None:
                on_source(source)
        return result


def missing_roots(sources: list[str]) -> dict[str, int]:
    """Group vanished sources by where they lived: for files, the highest folder that no
    longer exists (an unmounted drive, a deleted folder) or else their folder; for URLs, the
    site. Returns {root: how many sources}, most first."""
    roots: dict[str, int] = {}
    for source in sources:
        if source_kind(source) == FILE:
            folder = Path(source).parent
            while not folder.parent.exists() and folder.parent != folder:
                folder = folder.parent
            root = str(folder)
        elif source_kind(source) == URL:
            scheme, _, rest = source.partition("://")
            root = f"{scheme}://{rest.split('/', 1)[0]}"
        else:
            root = source
        roots[root] = roots.get(root, 0) + 1
    return dict(sorted(roots.items(), key=lambda item: (-item[1], item[0])))


class SyncRefusedError(StoreError):
    """`sync` would remove more than a safe share of the documents (an unmounted drive?).

    `gone` holds the document ids it would remove, `roots` where their sources lived
    (see `missing_roots`).
    """

    def __init__(self, message: str, gone: list[str], roots: dict[str, int]):
        super().__init__(message)
        self.gone = gone
        self.roots = roots


def check_removal(
    location: str,
    gone_sources: set[str],
    gone_ids: list[str],
    total: int,
    safe_share: float = SAFE_SHARE,
) -> None:
    """Raise SyncRefusedError, naming where the sources lived, when removing `gone_ids` would
    take more than `safe_share` of the `total` documents (one document may always go)."""
    if len(gone_ids) <= max(1, safe_share * total):
        return
    roots = missing_roots(sorted(gone_sources))
    places = []
    for root, count in list(roots.items())[:5]:
        missing = source_kind(root) == FILE and not Path(root).exists()
        places.append(f"{root} ({count}{', folder missing' if missing else ''})")
    more = f" and {len(roots) - 5} more places" if len(roots) > 5 else ""
    raise SyncRefusedError(
        f"kb sync would remove {len(gone_ids)} of {total} documents of {location}: their "
        f"sources are gone from {', '.join(places)}{more}. Nothing was changed. If a drive is "
        "unmounted or a site is down, bring it back and sync again; if they were removed on "
        "purpose, run `infuse kb sync --prune`.",
        gone_ids,
        roots,
    )
