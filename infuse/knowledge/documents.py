"""The knowledge base's two shared types: `Document` (what a reader produced) and `Chunk` (what is stored)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One document: cleaned text (Markdown-like: `#` headings, `-` lists, `|` tables) and where it came from.

    `source` is the file path; `doc_id` is unique in a knowledge base (the path, or
    `path#key` for one row of a CSV/JSONL file). `reader_options` records how the file was
    read (chosen columns, ...) so `sync` can read it again the same way.
    """

    text: str
    source: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    doc_id: str = ""
    reader_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.doc_id:
            self.doc_id = self.source

    @property
    def content_hash(self) -> str:
        """SHA-256 of everything that ends up in the chunks (text, title, metadata)."""
        payload = json.dumps(
            [self.text, self.title, self.metadata], sort_keys=True, ensure_ascii=False, default=str
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Chunk:
    """A piece of a document, prefixed with its title and heading path, as stored and searched."""

    chunk_id: str
    doc_id: str
    source: str
    text: str
    position: int
    chunk_count: int
    doc_hash: str
    title: str = ""
    heading_path: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reader_options: dict[str, Any] = field(default_factory=dict)
    vector: Any = None  # numpy float32 array once embedded


@dataclass
class DocumentRecord:
    """What the store knows about one document (for `kb list`, updates and `sync`)."""

    doc_id: str
    source: str
    title: str
    doc_hash: str
    chunk_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    reader_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchHit:
    """A retrieved chunk with its scores.

    `score` is what the ranking used (RRF, BM25, cosine or reranker score); `similarity`
    is the cosine similarity to the question (used by the relevance threshold);
    `ranks` holds the chunk's rank in each list that was fused (1-based).
    """

    chunk: Chunk
    score: float
    similarity: float | None = None
    lexical_score: float | None = None
    rerank_score: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: text, source, score and the rest."""
        return {
            "text": self.chunk.text,
            "source": self.chunk.source,
            "score": self.score,
            "doc_id": self.chunk.doc_id,
            "chunk_id": self.chunk.chunk_id,
            "title": self.chunk.title,
            "heading_path": self.chunk.heading_path,
            "metadata": self.chunk.metadata,
            "similarity": self.similarity,
            "lexical_score": self.lexical_score,
            "rerank_score": self.rerank_score,
            "ranks": self.ranks,
        }
