"""`Library`: the knowledge base as the servers use it — search, add, remove, list, read one
document — opened once and shared by every request (thread-safe writes).

The knowledge base itself sees what other processes commit (`infuse kb add` beside a running
server): each read looks at the latest committed version, so nothing here caches documents.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from infuse.errors import StoreError
from infuse.knowledge.kb import IngestReport
from infuse.serve.guard import AddGuard
from infuse.serve.schemas import (
    RemoveResult,
    SearchHitModel,
    SearchResult,
    SourceList,
    SourceModel,
    doc_key,
    doc_uri,
)

MAX_SEARCH_K = 50


def open_knowledge_base(location: str | Path, *, create: bool = False, embedder: Any = None):
    """Open the knowledge base at `location`; StoreError naming it when none is there (unless
    `create`)."""
    import inspect

    from infuse.knowledge.kb import KnowledgeBase

    kwargs: dict[str, Any] = {}
    if embedder is not None:
        kwargs["embedder"] = embedder
    if "create" in inspect.signature(KnowledgeBase).parameters:
        return KnowledgeBase(location, create=create, **kwargs)
    # The knowledge base before the `create` flag created folders silently: refuse here instead.
    if not create and "://" not in str(location) and not Path(location).expanduser().is_dir():
        raise StoreError(
            f"No knowledge base at {location}. Build one with `infuse kb add FILES --kb {location}`."
        )
    return KnowledgeBase(location, **kwargs)


class Library:
    """The served knowledge base. `guard` decides which files clients may add."""

    def __init__(self, kb: Any, guard: AddGuard | None = None) -> None:
        self.kb = kb
        self.guard = guard or AddGuard()
        self._write_lock = threading.Lock()

    def _search_lock(self):
        """The lock RAG sessions over this knowledge base take too: one embedder call at a time."""
        from infuse.rag import search_lock

        return search_lock(self.kb)

    @property
    def location(self) -> str:
        return str(self.kb.location)

    def search(self, query: str, k: int = 5) -> SearchResult:
        """The k best chunks for `query` (hybrid retrieval), best first."""
        if not query.strip():
            raise ValueError("The query is empty; give a few words to search for.")
        k = max(1, min(int(k), MAX_SEARCH_K))
        with self._search_lock():
            hits = self.kb.search(query, k=k)
        return SearchResult(
            query=query,
            hits=[
                SearchHitModel(
                    rank=rank,
                    source=hit.chunk.source,
                    doc_id=hit.chunk.doc_id,
                    chunk_id=hit.chunk.chunk_id,
                    score=float(hit.score),
                    similarity=hit.similarity,
                    title=hit.chunk.title,
                    heading_path=list(hit.chunk.heading_path),
                    text=hit.chunk.text,
                    uri=doc_uri(hit.chunk.doc_id),
                )
                for rank, hit in enumerate(hits, start=1)
            ],
        )

    def sources(self) -> SourceList:
        """Every document, in the order the store lists them."""
        records = self.kb.documents()
        return SourceList(
            count=len(records),
            sources=[
                SourceModel(
                    doc_id=record.doc_id,
                    source=record.source,
                    title=record.title,
                    chunk_count=record.chunk_count,
                    uri=doc_uri(record.doc_id),
                    metadata=dict(record.metadata),
                )
                for record in records
            ],
        )

    def add(self, paths: list[str]) -> IngestReport:
        """Add files (or folders) under the allowed roots; PathNotAllowedError for any other."""
        files = self.guard.files(paths)
        with self._write_lock, self._search_lock():
            return self.kb.add([str(file) for file in files])

    def add_documents(self, documents: list[Any]) -> Any:
        """Add documents that come from elsewhere (an upload, a web page); the IngestReport."""
        with self._write_lock, self._search_lock():
            return self.kb.add_documents(documents)

    def sync(self, refreshers: list[Any]) -> Any:
        """Bring every document up to date with its source (`KnowledgeBase.sync`); the IngestReport."""
        with self._write_lock, self._search_lock():
            return self.kb.sync(refreshers=refreshers)

    def remove(self, targets: list[str]) -> RemoveResult:
        """Remove documents by source path or document id (or the short id of `infuse://doc/`)."""
        by_key = {doc_key(record.doc_id): record.doc_id for record in self.kb.documents()}
        resolved = [by_key.get(target, target) for target in targets]
        with self._write_lock:
            removed, unknown = self.kb.remove(resolved)
        return RemoveResult(removed=list(removed), unknown=list(unknown))

    def record(self, key: str):
        """The DocumentRecord whose id or short id is `key`, or None."""
        for record in self.kb.documents():
            if key in (record.doc_id, doc_key(record.doc_id)):
                return record
        return None

    def chunks(self, doc_id: str) -> list[Any]:
        """A document's chunks in order."""
        return list(self.kb.chunks(doc_id))

    def document_text(self, key: str) -> tuple[Any, str]:
        """(record, text) of one document, its chunks joined in order. KeyError when unknown."""
        record = self.record(key)
        if record is None:
            raise KeyError(key)
        chunks = sorted(self.chunks(record.doc_id), key=lambda chunk: chunk.position)
        return record, "\n\n".join(chunk.text for chunk in chunks)

