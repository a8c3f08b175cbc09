"""Hybrid retrieval: BM25 and dense candidates fused by reciprocal rank fusion, optional
cross-encoder rerank, metadata filters and a relevance threshold. Backend-independent.

    SearchSettings            how a question is searched (k, mode, filters, reranker, thresholds)
    retrieve(store, query)    the k best chunks, best first
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from infuse.errors import ConfigError
from infuse.knowledge.documents import SearchHit
from infuse.knowledge.store import ChunkStore, Filters

MODES = ("hybrid", "bm25", "dense")


@dataclass(frozen=True)
class SearchSettings:
    """How a question is searched; `KnowledgeBase.search` takes these as keywords and a
    `RagSession` holds one for every question it is asked. Checked when made (ConfigError).

    k: chunks returned. mode: `hybrid` (BM25 + dense, RRF), `bm25` or `dense`. filters:
    metadata equalities. reranker: a cross-encoder re-scoring the head of the list.
    min_similarity / min_rerank_score: drop chunks below this cosine / reranker score.
    candidates: chunks each of BM25 and dense bring before fusion.
    """

    k: int = 5
    mode: str = "hybrid"
    filters: Filters | None = None
    reranker: Any = None
    min_similarity: float | None = None
    min_rerank_score: float | None = None
    candidates: int = 50

    def __post_init__(self) -> None:
        check_search(self.mode, self.k)

    def changed(self, **changes: Any) -> SearchSettings:
        """These settings with some fields changed (`settings.changed(k=3)`)."""
        return replace(self, **changes) if changes else self

    def keywords(self) -> dict[str, Any]:
        """The settings as keyword arguments of `retrieve`."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the reranker by its name)."""
        out = self.keywords()
        if self.reranker is not None:
            out["reranker"] = getattr(self.reranker, "name", type(self.reranker).__name__)
        out["filters"] = dict(self.filters) if self.filters else None
        return out


def check_search(mode: str, k: int) -> None:
    """Raise ConfigError for an unknown search mode or a k below 1."""
    if mode not in MODES:
        raise ConfigError(f"Search mode {mode!r} is unknown; use one of {', '.join(MODES)}.")
    if k < 1:
        raise ConfigError(f"k={k}: ask for at least one result.")


def rrf_fuse(ranked: dict[str, list[SearchHit]], rrf_k: int = 60) -> list[SearchHit]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (rrf_k + rank); best first.

    Each fused hit keeps the similarity / lexical score seen in any list and its `ranks`.
    """
    fused: dict[str, SearchHit] = {}
    for name, hits in ranked.items():
        for rank, hit in enumerate(hits, start=1):
            key = hit.chunk.chunk_id
            if key not in fused:
                fused[key] = replace(hit, score=0.0, ranks={})
            target = fused[key]
            target.score += 1.0 / (rrf_k + rank)
            target.ranks[name] = rank
            if target.similarity is None:
                target.similarity = hit.similarity
            if target.lexical_score is None:
                target.lexical_score = hit.lexical_score
    return sorted(fused.values(), key=lambda hit: (-hit.score, hit.chunk.chunk_id))


def _cosine(query_vector: Any, hit: SearchHit) -> float | None:
    import numpy as np

    if hit.chunk.vector is None:
        return None
    vector = np.asarray(hit.chunk.vector, dtype=np.float32)
    norm = float(np.linalg.norm(vector) * np.linalg.norm(query_vector))
    return float(np.dot(vector, query_vector) / norm) if norm else 0.0


def retrieve(
    store: ChunkStore,
    query: str,
    *,
    embedder: Any = None,
    query_vector: Any = None,
    k: int = 5,
    mode: str = "hybrid",
    filters: Filters | None = None,
    candidates: int = 50,
    rrf_k: int = 60,
    reranker: Any = None,
    rerank_candidates: int = 20,
    min_similarity: float | None = None,
    min_rerank_score: float | None = None,
) -> list[SearchHit]:
    """The k best chunks for `query`, best first.

    mode: `hybrid` (BM25 + dense, RRF), `bm25` or `dense`. With a `reranker`, the top
    `rerank_candidates` are re-scored by it and `score` becomes its score. `min_similarity`
    drops chunks whose cosine similarity to the question is lower; `min_rerank_score` does the
    same on reranker scores. Raises ConfigError for a bad mode or k.
    """
    check_search(mode, k)
    needs_vector = mode != "bm25" or min_similarity is not None
    if needs_vector and query_vector is None:
        if embedder is None:
            raise ConfigError("Dense search needs an embedder (or a query vector).")
        query_vector = embedder.embed_query(query)
    pool = max(candidates, k, rerank_candidates if reranker is not None else 0)
    ranked: dict[str, list[SearchHit]] = {}
    if mode in ("hybrid", "bm25"):
        ranked["bm25"] = store.lexical_search(query, pool, filters)
    if mode in ("hybrid", "dense"):
        ranked["dense"] = store.dense_search(query_vector, pool, filters)
    if mode == "hybrid":
        hits = rrf_fuse(ranked, rrf_k)
    else:
        hits = [replace(hit, ranks={mode: rank}) for rank, hit in enumerate(ranked[mode], start=1)]
    if query_vector is not None:
        for hit in hits:
            if hit.similarity is None:
                hit.similarity = _cosine(query_vector, hit)
    if min_similarity is not None:
        hits = [
            hit for hit in hits if hit.similarity is not None and hit.similarity >= min_similarity
        ]
    if reranker is not None and hits:
        head = hits[:rerank_candidates]
        for hit, score in zip(
            head, reranker.score(query, [hit.chunk.text for hit in head]), strict=True
        ):
            hit.rerank_score = score
            hit.score = score
        hits = sorted(head, key=lambda hit: (-hit.score, hit.chunk.chunk_id))
        if min_rerank_score is not None:
            hits = [hit for hit in hits if hit.rerank_score >= min_rerank_score]
    for hit in hits:
        hit.chunk.vector = None  # not needed past this point; keeps results light
    return hits[:k]
