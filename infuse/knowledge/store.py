"""The chunk store interface (the backends build on it; `stores.open_store` picks one).

Two backends implement `ChunkStore`: LanceDB on disk in the project folder (the default) and
PostgreSQL + pgvector (a `postgresql://` URL). Both keep the invariant that a document is
either wholly present (all its chunks, one content hash) or absent: `replace_documents` is
one atomic commit, so a crash mid-ingest never leaves half a document behind. Writers hold
the store's lock (`writing()`), so two processes adding the same files never meet, and every
write replaces whole documents by id, so a chunk is never stored twice.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from infuse.closing import Closing
from infuse.errors import ConfigError
from infuse.knowledge.documents import Chunk, DocumentRecord, SearchHit

DEFAULT_KB_DIR = Path(".infuse") / "kb"
Filters = dict[str, Any]
COLUMN_FILTERS = ("source", "doc_id", "title")
_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")


def normalize_filters(filters: Filters | None) -> dict[str, list[str]]:
    """Validate filters: `{key: value or [values]}`; a chunk matches when every key has one of its values.

    Keys `source`, `doc_id`, `title` match those fields; any other key matches document metadata.
    """
    normalized: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if not _KEY.match(key):
            raise ConfigError(f"Filter key {key!r}: use letters, digits, '_', '.', '-' only.")
        values = value if isinstance(value, (list, tuple, set)) else [value]
        if not values:
            raise ConfigError(f"Filter {key!r} has no values.")
        normalized[key] = [metadata_value(item) for item in values]
    return normalized


def metadata_value(value: Any) -> str:
    """The string form metadata values are matched by (`True` -> `true`, `3` -> `3`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ChunkStore(ABC, Closing):
    """Where chunks, their vectors and their full-text index live."""

    location: str

    @abstractmethod
    def read_meta(self) -> dict[str, Any]:
        """Knowledge-base settings saved with the store (embedder, dimension, chunking)."""

    @abstractmethod
    def write_meta(self, meta: dict[str, Any]) -> None:
        """Save knowledge-base settings."""

    def replace_documents(
        self,
        chunks: list[Chunk],
        remove_doc_ids: list[str],
        texts: dict[str, str] | None = None,
    ) -> None:
        """In one atomic commit: delete every chunk of `remove_doc_ids` and of the documents
        `chunks` belong to, then insert `chunks` (each chunk id at most once: the last wins).

        `texts` maps a document id to its full text, stored with its first chunk.
        """
        unique = list({chunk.chunk_id: chunk for chunk in chunks}.values())
        doomed = sorted(set(remove_doc_ids) | {chunk.doc_id for chunk in unique})
        if doomed:
            self._replace(unique, doomed, texts or {})

    @abstractmethod
    def _replace(self, chunks: list[Chunk], doomed: list[str], texts: dict[str, str]) -> None:
        """The backend's commit for `replace_documents`: delete every chunk of the `doomed`
        documents and insert `chunks` (unique ids), all or nothing."""

    @abstractmethod
    def writing(self, on_wait: Callable[[], None] | None = None) -> AbstractContextManager[None]:
        """Hold the store's writer lock (one writer at a time across processes).

        `on_wait` is called once if another writer holds it and this one has to wait.
        """

    @abstractmethod
    def chunks(self, doc_id: str) -> list[Chunk]:
        """Every chunk of one document in order (empty when the document is unknown)."""

    @abstractmethod
    def document_text(self, doc_id: str) -> str | None:
        """The full text the document was added with (None when unknown or not stored)."""

    def repair(self) -> list[str]:
        """Delete extra copies of chunks stored more than once; returns the document ids fixed."""
        return []

    @abstractmethod
    def remove_sources(self, sources: list[str]) -> int:
        """Delete every chunk whose source is in `sources`; returns how many documents went."""

    @abstractmethod
    def documents(self) -> list[DocumentRecord]:
        """Every document in the store, sorted by source then doc_id."""

    @abstractmethod
    def dense_search(self, vector: Any, k: int, filters: Filters | None = None) -> list[SearchHit]:
        """The k chunks nearest `vector` (cosine); `similarity` is set on each hit."""

    @abstractmethod
    def lexical_search(self, query: str, k: int, filters: Filters | None = None) -> list[SearchHit]:
        """The k best full-text matches for `query`; `lexical_score` is set on each hit."""

    @abstractmethod
    def count(self) -> int:
        """Number of chunks stored."""

    def optimize(self) -> None:  # noqa: B027 - optional for backends whose indexes maintain themselves
        """Refresh indexes after a batch of writes."""


def is_database_url(location: str | Path) -> bool:
    """True for `postgresql://` / `postgres://` URLs."""
    return str(location).startswith(("postgresql://", "postgres://"))


def no_knowledge_base(location: str) -> str:
    """The message for a location that holds no knowledge base."""
    return (
        f"No knowledge base at {location}. Check --kb (or INFUSE_KB), or create one there with "
        f"`infuse kb add FILES --kb {location}`."
    )


def records_from_rows(rows: list[dict[str, Any]]) -> list[DocumentRecord]:
    """Group per-chunk rows (doc_id, source, title, doc_hash, chunk_count, metadata, reader_options)
    into one record per document."""
    by_doc: dict[str, DocumentRecord] = {}
    for row in rows:
        if row["doc_id"] not in by_doc:
            by_doc[row["doc_id"]] = DocumentRecord(
                doc_id=row["doc_id"],
                source=row["source"],
                title=row["title"],
                doc_hash=row["doc_hash"],
                chunk_count=int(row["chunk_count"]),
                metadata=row.get("metadata") or {},
                reader_options=row.get("reader_options") or {},
            )
    return sorted(by_doc.values(), key=lambda record: (record.source, record.doc_id))
