"""Retrieval evaluation: recall@k, MRR and nDCG@10 for BM25, dense, hybrid and hybrid+rerank
side by side, from a queries file and a qrels file (BEIR, TREC or JSONL layouts).

    evaluate_retrieval(kb, queries, qrels) -> RetrievalReport   (`infuse eval retrieval`)
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.files import read_jsonl
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from infuse.knowledge.retrieval import retrieve

MODES = ("bm25", "dense", "hybrid", "hybrid+rerank")


def _numbered(path: Path, what: str) -> list[tuple[int, Any]]:
    """(line number, JSON object) for a .jsonl/.json file, (line number, line) otherwise."""
    if path.suffix.lower() in (".jsonl", ".json"):
        return read_jsonl(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{what} {path} cannot be read: {error.strerror or error}.") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{what} {path} is not UTF-8 text (byte {error.start}); give a UTF-8 TSV or JSONL file."
        ) from None
    return [
        (number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def load_queries(path: str | Path) -> dict[str, str]:
    """Queries from JSONL (`_id`/`id`/`query_id` + `text`/`query`) or TSV (`id<TAB>text`)."""
    path = Path(path)
    queries: dict[str, str] = {}
    for number, line in _numbered(path, "Queries file"):
        if isinstance(line, dict):
            record = line
            query_id = record.get("_id", record.get("id", record.get("query_id")))
            text = record.get("text", record.get("query"))
            if query_id is None or not text:
                raise DataError(
                    f"{path}, line {number}: need an id (`_id`, `id` or `query_id`) and `text`."
                )
        else:
            query_id, _, text = line.partition("\t")
            if not text:
                raise DataError(f"{path}, line {number}: expected `id<TAB>question`.")
        queries[str(query_id)] = str(text).strip()
    if not queries:
        raise DataError(f"Queries file {path} holds no queries.")
    return queries


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Relevance judgements: BEIR TSV (`query-id corpus-id score`, header), TREC (`qid 0 docid rel`)
    or JSONL (`query_id`, `doc_id`, `relevance`). Returns {query id: {doc id: grade}}."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _numbered(path, "Qrels file"):
        if isinstance(line, dict):
            fields = [line.get("query_id"), line.get("doc_id"), line.get("relevance", 1)]
        else:
            fields = next(csv.reader([line], delimiter="\t")) if "\t" in line else line.split()
            if len(fields) == 4:
                fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3 or fields[0] is None or fields[1] is None:
            raise DataError(f"{path}, line {number}: expected query id, document id and grade.")
        try:
            grade = int(float(fields[2]))
        except (TypeError, ValueError):
            if number == 1:
                continue  # a header row
            raise DataError(
                f"{path}, line {number}: grade {fields[2]!r} is not a number."
            ) from None
        qrels.setdefault(str(fields[0]), {})[str(fields[1])] = grade
    return qrels


def document_keys(doc_id: str, source: str) -> set[str]:
    """Names a qrels file may use for a document: its id, row key, file name or file stem."""
    keys = {doc_id, Path(source).name, Path(source).stem}
    if "#" in doc_id:
        keys.add(doc_id.rsplit("#", 1)[1])
    return keys


@dataclass
class RetrievalReport:
    """Metrics per retrieval mode (None where a mode could not run, with the reason in `notes`)."""

    metrics: dict[str, dict[str, float] | None] = field(default_factory=dict)
    queries: int = 0
    ks: tuple[int, ...] = (1, 5, 10)
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"queries": self.queries, "metrics": self.metrics, "notes": self.notes}

    def columns(self) -> list[str]:
        """Metric names in display order."""
        return [f"recall@{k}" for k in self.ks] + ["mrr", "ndcg@10", "ms/query"]


def evaluate_retrieval(
    kb: KnowledgeBase | str | Path,
    queries: str | Path | dict[str, str],
    qrels: str | Path | dict[str, dict[str, int]],
    *,
    reranker: Any = None,
    ks: tuple[int, ...] = (1, 5, 10),
    depth: int = 100,
    modes: tuple[str, ...] = MODES,
) -> RetrievalReport:
    """Rank documents for every judged query with each mode and average the metrics.

    A document's rank is that of its best chunk. `reranker` (a Reranker) enables
    `hybrid+rerank`. Raises DataError when no qrels document id matches the knowledge base.
    """
    knowledge = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase(kb)
    query_texts = load_queries(queries) if not isinstance(queries, dict) else queries
    judgements = load_qrels(qrels) if not isinstance(qrels, dict) else qrels
    judged = [query_id for query_id in query_texts if judgements.get(query_id)]
    keys_by_doc = {
        record.doc_id: document_keys(record.doc_id, record.source)
        for record in knowledge.documents()
    }
    known = set().union(*keys_by_doc.values()) if keys_by_doc else set()
    if not any(doc in known for query_id in judged for doc in judgements[query_id]):
        raise DataError(
            "No document id in the qrels matches the knowledge base (ids are matched against the "
            "document id, the row key given by --id-column, the file name and its stem)."
        )
    report = RetrievalReport(queries=len(judged), ks=ks)
    vectors = {}
    if any(mode != "bm25" for mode in modes):
        texts = [query_texts[query_id] for query_id in judged]
        vectors = dict(zip(judged, knowledge.embedder.embed(texts), strict=True))
    for mode in modes:
        if mode == "hybrid+rerank" and reranker is None:
            report.metrics[mode] = None
            report.notes[mode] = "no reranker given (--reranker PATH)"
            continue
        sums: dict[str, float] = {column: 0.0 for column in report.columns()}
        for query_id in judged:
            relevance = judgements[query_id]
            started = time.perf_counter()
            hits = retrieve(
                knowledge.store,
                query_texts[query_id],
                query_vector=vectors.get(query_id),
                k=depth,
                candidates=depth,
                mode=mode.split("+")[0],
                reranker=reranker if mode == "hybrid+rerank" else None,
                rerank_candidates=min(depth, 30),
            )
            sums["ms/query"] += (time.perf_counter() - started) * 1000
            ranked: list[str] = []
            for hit in hits:
                keys = keys_by_doc.get(hit.chunk.doc_id) or document_keys(
                    hit.chunk.doc_id, hit.chunk.source
                )
                match = next((key for key in keys if key in relevance), min(keys))
                if match not in ranked:
                    ranked.append(match)
            for k in ks:
                sums[f"recall@{k}"] += recall_at_k(ranked, relevance, k)
            sums["mrr"] += reciprocal_rank(ranked, relevance)
            sums["ndcg@10"] += ndcg_at_k(ranked, relevance, 10)
        report.metrics[mode] = {name: total / max(1, len(judged)) for name, total in sums.items()}
    return report
