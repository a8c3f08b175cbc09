"""Fusion, metrics and the retrieval evaluation (files in BEIR, TREC and JSONL layouts)."""

from __future__ import annotations

import json
import math

import pytest

from infuse.errors import ConfigError, DataError
from infuse.knowledge.documents import Chunk, SearchHit
from infuse.knowledge.evaluation import evaluate_retrieval, load_qrels, load_queries
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from infuse.knowledge.retrieval import retrieve, rrf_fuse


def _hit(chunk_id: str, **scores) -> SearchHit:
    chunk = Chunk(
        chunk_id=chunk_id,
        doc_id=chunk_id,
        source=chunk_id,
        text=chunk_id,
        position=0,
        chunk_count=1,
        doc_hash="h",
    )
    return SearchHit(chunk=chunk, score=0.0, **scores)


def test_rrf_rewards_agreement():
    fused = rrf_fuse(
        {
            "bm25": [_hit("a", lexical_score=3.0), _hit("b"), _hit("c")],
            "dense": [_hit("c", similarity=0.9), _hit("a", similarity=0.5), _hit("d")],
        },
        rrf_k=60,
    )
    assert [hit.chunk.chunk_id for hit in fused] == ["a", "c", "b", "d"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[0].ranks == {"bm25": 1, "dense": 2}
    assert fused[0].similarity == 0.5 and fused[0].lexical_score == 3.0


def test_metrics_by_hand():
    relevance = {"a": 2, "b": 1, "z": 0}
    ranked = ["x", "a", "y", "b"]
    assert recall_at_k(ranked, relevance, 1) == 0.0
    assert recall_at_k(ranked, relevance, 4) == 1.0
    assert reciprocal_rank(ranked, relevance) == 0.5
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, relevance, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([], {}, 10) == 0.0


def test_bad_mode_and_k(tmp_path, tiny_embedder):
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder) as kb:
        with pytest.raises(ConfigError, match="hybrid, bm25, dense"):
            retrieve(kb.store, "q", embedder=tiny_embedder, mode="fuzzy")
        with pytest.raises(ConfigError, match="at least one"):
            retrieve(kb.store, "q", embedder=tiny_embedder, k=0)


def test_query_and_qrels_layouts(tmp_path):
    (tmp_path / "q.jsonl").write_text(json.dumps({"_id": "1", "text": "refund?"}) + "\n")
    (tmp_path / "q.tsv").write_text("1\trefund?\n")
    (tmp_path / "beir.tsv").write_text("query-id\tcorpus-id\tscore\n1\tdoc-a\t2\n")
    (tmp_path / "trec.txt").write_text("1 0 doc-a 2\n")
    (tmp_path / "qrels.jsonl").write_text(
        json.dumps({"query_id": "1", "doc_id": "doc-a", "relevance": 2}) + "\n"
    )
    assert (
        load_queries(tmp_path / "q.jsonl") == load_queries(tmp_path / "q.tsv") == {"1": "refund?"}
    )
    expected = {"1": {"doc-a": 2}}
    for name in ("beir.tsv", "trec.txt", "qrels.jsonl"):
        assert load_qrels(tmp_path / name) == expected
    (tmp_path / "bad.tsv").write_text("1\tdoc\tx\n1\tdoc\tnope\n")
    with pytest.raises(DataError, match="line 2: grade 'nope'"):
        load_qrels(tmp_path / "bad.tsv")


def test_evaluate_retrieval_side_by_side(tmp_path, tiny_embedder, tiny_reranker_dir):
    from infuse.knowledge.rerank import Reranker

    corpus = tmp_path / "corpus.jsonl"
    topics = [
        "refund window days",
        "shipping abroad express",
        "warranty defects years",
        "office Springfield email",
        "pricing tiers monthly",
    ]
    corpus.write_text(
        "\n".join(
            json.dumps({"_id": f"d{i}", "text": f"All about {topic}."})
            for i, topic in enumerate(topics)
        )
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": f"q{i}", "text": topic.split()[0]}) for i, topic in enumerate(topics)
        )
    )
    (tmp_path / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "\n".join(f"q{i}\td{i}\t1" for i in range(len(topics)))
    )
    from infuse.knowledge.readers import RowOptions

    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder) as kb:
        kb.add([corpus], row_options=RowOptions(text_columns=["text"], id_column="_id"))
        report = evaluate_retrieval(kb, tmp_path / "queries.jsonl", tmp_path / "qrels.tsv")
        assert report.queries == 5
        assert (
            report.metrics["bm25"]["recall@1"] == 1.0 and report.metrics["bm25"]["ndcg@10"] == 1.0
        )
        assert 0.0 < report.metrics["dense"]["mrr"] <= 1.0
        assert report.metrics["hybrid"]["recall@10"] == 1.0
        assert (
            report.metrics["hybrid+rerank"] is None and "reranker" in report.notes["hybrid+rerank"]
        )
        reranked = evaluate_retrieval(
            kb,
            tmp_path / "queries.jsonl",
            tmp_path / "qrels.tsv",
            reranker=Reranker(tiny_reranker_dir),
            modes=("hybrid+rerank",),
        )
        assert reranked.metrics["hybrid+rerank"]["recall@10"] == 1.0
        (tmp_path / "other.tsv").write_text("q0\tunknown-doc\t1\n")
        with pytest.raises(DataError, match="No document id in the qrels"):
            evaluate_retrieval(kb, tmp_path / "queries.jsonl", tmp_path / "other.tsv")
