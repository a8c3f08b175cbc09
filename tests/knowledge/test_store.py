"""One battery, two backends: every test here runs on LanceDB and on a real PostgreSQL + pgvector."""

from __future__ import annotations

import pytest

from infuse.errors import ConfigError
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.readers import RowOptions

POLICIES = "# Policies\n\n## Refunds\n\nThe refund window is 45 days.\n\n## Shipping\n\nShipping takes three business days.\n"


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "policies.md").write_text(POLICIES)
    (folder / "office.txt").write_text(
        "Our office is in Springfield. Support answers email within one day."
    )
    (folder / "faq.csv").write_text(
        "id,question,answer,team\nw,What does the warranty cover?,Manufacturing defects for two years.,support\n"
        "p,How are plans billed?,Pricing tiers are billed monthly.,sales\n"
    )
    (folder / "image.txt").write_bytes(b"\x89PNG\x00\x00\x00binary")
    return folder


@pytest.fixture
def kb(store_location, tiny_embedder):
    knowledge = KnowledgeBase(store_location, create=True, embedder=tiny_embedder)
    yield knowledge
    knowledge.close()


ROWS = RowOptions(text_columns=["question", "answer"], metadata_columns=["team"], id_column="id")


def test_add_list_and_skip_binary(kb, docs):
    report = kb.add([docs], row_options=ROWS)
    ids = sorted(report.added)
    assert ids == sorted(
        [
            str(docs / "policies.md"),
            str(docs / "office.txt"),
            f"{docs / 'faq.csv'}#w",
            f"{docs / 'faq.csv'}#p",
        ]
    )
    assert [item["path"] for item in report.skipped] == [str(docs / "image.txt")]
    assert "binary" in report.skipped[0]["reason"]
    records = {record.doc_id: record for record in kb.documents()}
    assert set(records) == set(ids)
    assert records[str(docs / "policies.md")].chunk_count == 2
    assert records[f"{docs / 'faq.csv'}#w"].metadata == {"team": "support"}
    assert kb.store.count() == 5


def test_unchanged_changed_and_sync(kb, docs):
    kb.add([docs], row_options=ROWS)
    again = kb.add([docs], row_options=ROWS)
    assert again.added == [] and again.updated == [] and again.chunks_written == 0
    assert len(again.unchanged) == 4

    (docs / "policies.md").write_text(POLICIES.replace("45 days", "30 days"))
    (docs / "faq.csv").write_text(
        "id,question,answer,team\nw,What does the warranty cover?,"
        "Manufacturing defects for two years.,support\n"
    )
    (docs / "office.txt").unlink()
    report = kb.sync()
    assert report.updated == [str(docs / "policies.md")]
    assert sorted(report.removed) == sorted([str(docs / "office.txt"), f"{docs / 'faq.csv'}#p"])
    assert f"{docs / 'faq.csv'}#w" in report.unchanged  # reread with the columns it was added with
    texts = [hit.chunk.text for hit in kb.search("refund window", k=10, mode="bm25")]
    assert any("30 days" in text for text in texts) and not any("45 days" in text for text in texts)
    assert kb.store.count() == 3  # two policy chunks + one row, no leftovers


def test_search_modes_and_json_shape(kb, docs):
    kb.add([docs], row_options=ROWS)
    for mode in ("hybrid", "bm25", "dense"):
        hits = kb.search(
            "How long is the refund window?"
            if mode != "dense"
            else "Policies > Refunds\n\nThe refund window is 45 days.",
            k=3,
            mode=mode,
        )
        assert hits, mode
        assert "45 days" in hits[0].chunk.text, mode
        payload = hits[0].to_dict()
        assert payload["source"] == str(docs / "policies.md") and isinstance(
            payload["score"], float
        )
        assert payload["ranks"][mode if mode != "hybrid" else "bm25"] == 1
    hybrid = kb.search("refund window", k=3)
    assert hybrid[0].similarity is not None and hybrid[0].lexical_score is not None


def test_filters_on_metadata_and_source(kb, docs):
    kb.add([docs], row_options=ROWS)
    sales = kb.search("warranty defects plans billed", k=5, filters={"team": "sales"})
    assert [hit.chunk.doc_id for hit in sales] == [f"{docs / 'faq.csv'}#p"]
    either = kb.search("warranty plans", k=5, filters={"team": ["sales", "support"]})
    assert {hit.chunk.doc_id for hit in either} == {
        f"{docs / 'faq.csv'}#p",
        f"{docs / 'faq.csv'}#w",
    }
    office = kb.search("office", k=5, mode="dense", filters={"source": str(docs / "office.txt")})
    assert {hit.chunk.source for hit in office} == {str(docs / "office.txt")}
    assert kb.search("refund", k=5, filters={"team": "nobody"}) == []
    with pytest.raises(ConfigError, match="Filter key"):
        kb.search("x", filters={"bad key!": "v"})


def test_remove_by_path_and_id(kb, docs):
    kb.add([docs], row_options=ROWS)
    removed, unknown = kb.remove([str(docs / "office.txt"), f"{docs / 'faq.csv'}#w", "nope.md"])
    assert sorted(removed) == sorted([str(docs / "office.txt"), f"{docs / 'faq.csv'}#w"])
    assert unknown == ["nope.md"]
    assert {record.doc_id for record in kb.documents()} == {
        str(docs / "policies.md"),
        f"{docs / 'faq.csv'}#p",
    }


def test_relevance_threshold_and_empty_kb(kb, docs):
    assert kb.search("anything", k=3) == []
    kb.add([docs / "policies.md"])
    assert kb.search("refund window", k=3, min_similarity=1.01) == []
    assert kb.search("refund window", k=3, min_similarity=-1.0)


def test_reranker_path_runs(kb, docs, tiny_reranker_dir):
    from infuse.knowledge.rerank import Reranker

    kb.add([docs], row_options=ROWS)
    hits = kb.search("refund window", k=3, reranker=Reranker(tiny_reranker_dir))
    assert len(hits) == 3
    assert all(hit.rerank_score is not None and hit.score == hit.rerank_score for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert (
        kb.search("refund window", k=3, reranker=Reranker(tiny_reranker_dir), min_rerank_score=1e9)
        == []
    )


def test_reopen_uses_recorded_embedder_and_rejects_another(store_location, tiny_embedder, docs):
    with KnowledgeBase(store_location, create=True, embedder=tiny_embedder) as knowledge:
        knowledge.add([docs / "office.txt"])
    with KnowledgeBase(store_location) as reopened:
        assert reopened.embedder_spec == tiny_embedder.spec
        assert reopened.search("Springfield office", k=1)[0].chunk.source == str(
            docs / "office.txt"
        )
    with pytest.raises(ConfigError, match="was built with embedder"):
        KnowledgeBase(store_location, embedder="minilm")
