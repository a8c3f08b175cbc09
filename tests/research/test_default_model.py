"""Research end to end with the packaged default model (slow: a real model drives every step)."""

from __future__ import annotations

import pytest

from infuse.research import NO_ANSWER, Budget, ResearchSession
from infuse.scrape.fetch import FetchConfig

pytestmark = pytest.mark.slow


def test_default_model_writes_a_checked_report_within_budget(kb, site):
    from infuse.llm import load_chat_model

    budget = Budget(depth=2, breadth=2, pages=2, model_calls=8, seconds=240)
    session = ResearchSession(
        load_chat_model(), kb=kb, search=f"searxng:{site.url}", budget=budget,
        fetch_config=FetchConfig(allow_private=True, min_delay=0.0), min_similarity=None,
        max_new_tokens=160,
    )
    answer = session.answer("How long is the refund window?")
    facts = answer.facts
    assert facts["model_calls"] <= 8 and facts["pages_fetched"] <= 2
    read = {s["number"]: s["source"] for s in facts["sources_read"]}
    assert any(not source.startswith("http") for source in read.values())  # the kb was read
    assert site.searches  # and the web searched
    for citation in answer.citations:  # every citation kept is a source read
        assert read[citation.number] == citation.source
    for number in facts["dropped_citations"]:
        assert f"[{number}]" not in answer.text.split("## Sources")[0] or number in read
    assert answer.text.startswith("# How long is the refund window?")
    assert (NO_ANSWER in answer.text) == answer.no_answer
    assert answer.no_answer or answer.citations
