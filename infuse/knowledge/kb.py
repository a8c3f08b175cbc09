"""`KnowledgeBase`: the Python twin of `infuse kb ...` — add, sync, remove, list and search.

Ingest is incremental and crash-safe: each document's content hash is stored with its chunks;
an unchanged document is skipped, a changed one has its chunks replaced, and each batch of
documents is written in one atomic store commit. A killed ingest leaves whole documents only,
and running it again picks up where it stopped (finished documents are unchanged).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError, DataError
from infuse.knowledge.chunking import chunk_document
from infuse.knowledge.documents import Chunk, DocumentRecord, SearchHit
from infuse.knowledge.embeddings import DEFAULT_EMBEDDER, Embedder
from infuse.knowledge.readers import RowOptions, read_file
from infuse.knowledge.reading import find_files
from infuse.knowledge.retrieval import retrieve
from infuse.knowledge.store import ChunkStore, Filters, is_database_url, open_store

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 40


@dataclass
class IngestReport:
    """What an add or sync did (document ids per outcome; skipped files with the reason)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks_written: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class KnowledgeBase:
    """A knowledge base at a folder (LanceDB) or a `postgresql://` URL.

    `embedder` is a packaged name (`minilm`), a sentence-transformers folder, or a loaded
    `Embedder`; by default the one the knowledge base was built with. `commit_chunks` is how
    many chunks are embedded and committed together (one atomic write).
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        embedder: str | Embedder | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        commit_chunks: int = 256,
        show_progress: bool = False,
    ):
        self.store: ChunkStore = open_store(location)
        self.location = self.store.location
        self.meta = self.store.read_meta()
        built_with = self.meta.get("embedder")
        if isinstance(embedder, Embedder):
            self._embedder: Embedder | None = embedder
            spec = embedder.spec
        else:
            self._embedder = None
            spec = embedder or built_with or DEFAULT_EMBEDDER
        if Path(spec).expanduser().is_dir():
            spec = str(Path(spec).expanduser().resolve())
        if built_with and spec != built_with:
            raise ConfigError(
                f"Knowledge base {self.location} was built with embedder {built_with!r}, not {spec!r}. "
                "Leave --embedder out, or use a new --kb."
            )
        self.embedder_spec = spec
        self.chunk_tokens = chunk_tokens or self.meta.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)
        self.overlap_tokens = (
            overlap_tokens
            if overlap_tokens is not None
            else self.meta.get("overlap_tokens", DEFAULT_OVERLAP_TOKENS)
        )
        self.commit_chunks = commit_chunks
        self.show_progress = show_progress

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded on first use)."""
        if self._embedder is None:
            self._embedder = Embedder(self.embedder_spec)
        return self._embedder

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reading ----------------------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        """Every document in the knowledge base."""
        return self.store.documents()

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: str = "hybrid",
        filters: Filters | None = None,
        reranker: Any = None,
        min_similarity: float | None = None,
        min_rerank_score: float | None = None,
        candidates: int = 50,
    ) -> list[SearchHit]:
        """The k best chunks for `query` (see `infuse.knowledge.retrieval.retrieve`)."""
        return retrieve(
            self.store,
            query,
            embedder=self.embedder,
            k=k,
            mode=mode,
            filters=filters,
            reranker=reranker,
            min_similarity=min_similarity,
            min_rerank_score=min_rerank_score,
            candidates=candidates,
        )

    # writing ----------------------------------------------------------------------------
    def _save_meta(self, dimension: int) -> None:
        wanted = {
            "embedder": self.embedder_spec,
            "dimension": dimension,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
        }
        if self.meta.get("dimension") not in (None, dimension):
            raise ConfigError(
                f"Knowledge base {self.location} holds {self.meta['dimension']}-dim vectors; "
                f"embedder {self.embedder_spec} makes {dimension}. Use a new --kb."
            )
        if any(self.meta.get(key) != value for key, value in wanted.items()):
            self.meta.update(wanted)
            self.store.write_meta(self.meta)

    def _commit(self, chunks: list[Chunk], remove_doc_ids: list[str], report: IngestReport) -> None:
        if chunks:
            vectors = self.embedder.embed([chunk.text for chunk in chunks])
            self._save_meta(int(vectors.shape[1]))
            for chunk, vector in zip(chunks, vectors, strict=True):
                chunk.vector = vector
        if chunks or remove_doc_ids:
            self.store.replace_documents(chunks, remove_doc_ids)
        report.chunks_written += len(chunks)

    def add(
        self,
        paths: Sequence[str | Path],
        *,
        row_options: RowOptions | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IngestReport:
        """Ingest files, folders or globs. Unchanged documents are skipped, changed ones replaced;
        unreadable or binary files are reported in `skipped` with the reason."""
        files, missing = find_files(paths)
        report = IngestReport(skipped=missing)
        self._ingest([(file, row_options) for file in files], report, metadata or {})
        return report

    def sync(self) -> IngestReport:
        """Re-read every known source the way it was added; drop sources whose file is gone."""
        report = IngestReport()
        options_by_source: dict[str, dict[str, Any]] = {}
        for record in self.documents():
            options_by_source.setdefault(record.source, record.reader_options)
        gone = [source for source in options_by_source if not Path(source).is_file()]
        if gone:
            gone_ids = [record.doc_id for record in self.documents() if record.source in gone]
            self.store.remove_sources(gone)
            report.removed += gone_ids
        work = [
            (Path(source), RowOptions(**options) if options else None)
            for source, options in options_by_source.items()
            if source not in gone
        ]
        self._ingest(work, report, {})
        return report

    def remove(self, targets: Sequence[str | Path]) -> tuple[list[str], list[str]]:
        """Remove documents by file path (all its documents) or document id.

        Returns (removed document ids, targets that matched nothing).
        """
        records = self.documents()
        removed, unknown = [], []
        for target in targets:
            names = {str(target)}
            if not is_database_url(str(target)):
                names.add(os.path.abspath(os.path.expanduser(str(target))))
            sources = sorted({record.source for record in records if record.source in names})
            by_id = [record.doc_id for record in records if record.doc_id == str(target)]
            if sources:
                self.store.remove_sources(sources)
                removed += [record.doc_id for record in records if record.source in sources]
            elif by_id:
                self.store.replace_documents([], by_id)
                removed += by_id
            else:
                unknown.append(str(target))
        return removed, unknown

    def _ingest(
        self,
        work: list[tuple[Path, RowOptions | None]],
        report: IngestReport,
        extra_metadata: dict[str, Any],
    ) -> None:
        stored: dict[str, dict[str, DocumentRecord]] = {}
        for record in self.documents():
            stored.setdefault(record.source, {})[record.doc_id] = record
        pending: list[Chunk] = []
        doomed: list[str] = []
        with _progress(self.show_progress, len(work)) as advance:
            for path, options in work:
                advance(path.name)
                try:
                    documents = read_file(path, options)
                except DataError as error:
                    report.skipped.append({"path": str(path), "reason": str(error)})
                    continue
                for document in documents:
                    document.metadata.update(extra_metadata)
                documents = [document for document in documents if document.text.strip()]
                if not documents:
                    report.skipped.append(
                        {"path": str(path), "reason": f"{path}: no text found; skipped."}
                    )
                    continue
                known = stored.get(str(path), {})
                new_ids = {document.doc_id for document in documents}
                for document in documents:
                    record = known.get(document.doc_id)
                    if record is not None and record.doc_hash == document.content_hash:
                        report.unchanged.append(document.doc_id)
                        continue
                    (report.updated if record else report.added).append(document.doc_id)
                    if record:
                        doomed.append(document.doc_id)
                    pending += chunk_document(
                        document, max_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens
                    )
                vanished = [doc_id for doc_id in known if doc_id not in new_ids]
                doomed += vanished
                report.removed += vanished
                if len(pending) >= self.commit_chunks:
                    self._commit(pending, doomed, report)
                    pending, doomed = [], []
        self._commit(pending, doomed, report)
        if report.chunks_written or report.removed:
            self.store.optimize()


class _progress:
    """A rich progress bar over files (to stderr), or nothing when not wanted."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled and total > 1
        self.total = total

    def __enter__(self):
        if not self.enabled:
            return lambda name: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("Indexing", total=self.total)
        return lambda name: self._bar.update(task, advance=1, description=f"Indexing {name}")

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()
