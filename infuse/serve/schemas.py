"""The typed results the servers return (pydantic, so MCP publishes output schemas from them and
the API validates what it sends). Built from the library's own types, never by hand in routes.
Where a library result is already a typed dataclass (`IngestReport`, what `add` did) the servers
return that type itself (MCP publishes a dataclass's schema as well)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field


def doc_key(doc_id: str) -> str:
    """A short, URI-safe id for a document (its ids are paths or URLs, full of `/`)."""
    return hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:16]


def doc_uri(doc_id: str) -> str:
    """The MCP resource address of a document: `infuse://doc/{key}`."""
    return f"infuse://doc/{doc_key(doc_id)}"


class SearchHitModel(BaseModel):
    """One retrieved chunk."""

    rank: int = Field(description="1 is the best match")
    source: str = Field(description="file path, URL or id the chunk came from")
    doc_id: str
    chunk_id: str
    score: float = Field(description="ranking score (RRF for hybrid search)")
    similarity: float | None = Field(None, description="cosine similarity to the query")
    title: str = ""
    heading_path: list[str] = Field(default_factory=list)
    text: str
    uri: str = Field(description="MCP resource of the whole document")


class SearchResult(BaseModel):
    """Ranked chunks for a query, best first."""

    query: str
    hits: list[SearchHitModel]


class SourceModel(BaseModel):
    """One document in the knowledge base."""

    doc_id: str
    source: str
    title: str = ""
    chunk_count: int
    uri: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class SourceList(BaseModel):
    """Every document in the knowledge base."""

    count: int
    sources: list[SourceModel]


class RemoveResult(BaseModel):
    """Documents removed, and targets that matched nothing."""

    removed: list[str]
    unknown: list[str]


class CitationModel(BaseModel):
    """A passage an answer relied on; `[index]` in the answer text refers to it."""

    index: int
    source: str
    doc_id: str | None = None
    chunk_id: str | None = None
    snippet: str = ""
    score: float | None = None
    attributed: bool = Field(
        False, description="true when the model did not write [n] and the passage was matched by its words"
    )


class AskResult(BaseModel):
    """An answer with numbered citations, the method that answered, and timings."""

    answer: str
    method: str = Field(description="the method that produced this answer")
    requested_method: str
    no_answer: bool = False
    fallback_from: str | None = Field(None, description="the method that declined first (auto)")
    citations: list[CitationModel] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)


class ResearchResult(BaseModel):
    """A research report (Markdown) with its checked citations."""

    report: str
    no_answer: bool = False
    citations: list[CitationModel] = Field(default_factory=list)
    dropped_citations: list[int] = Field(
        default_factory=list, description="citations to sources not read, removed from the report"
    )
    sources_read: int = 0
    model_calls: int = 0
    timings: dict[str, float] = Field(default_factory=dict)


class EvalSummary(BaseModel):
    """The current verdict: the assistant profile written by `infuse eval`, or why there is none."""

    available: bool
    profile_path: str | None = None
    winner: str | None = None
    criterion: str | None = None
    methods: list[dict[str, Any]] = Field(default_factory=list)
    not_distinguishable: list[list[str]] = Field(default_factory=list)
    message: str = ""


def citation_models(answer: Any) -> list[CitationModel]:
    """An Answer's citations as `CitationModel`s, numbered as the answer cites them."""
    result = []
    for citation in answer.citations:
        metadata = citation.metadata or {}
        result.append(
            CitationModel(
                index=citation.number,
                source=citation.source,
                doc_id=metadata.get("doc_id"),
                chunk_id=metadata.get("chunk_id"),
                snippet=(citation.text or "")[:500],
                score=citation.score,
                attributed=bool(metadata.get("attributed", False)),
            )
        )
    return result
