"""How a question is searched: one SearchSettings type for kb.search, RagSession and rag.answer."""

from __future__ import annotations

import json

import pytest
from scripted_model import ScriptedModel

from infuse.errors import ConfigError
from infuse.knowledge.retrieval import SearchSettings
from infuse.rag import DEFAULT_MIN_SIMILARITY, RAG_SEARCH, RagSession, answer


def test_bad_settings_are_refused_when_made_not_at_the_first_question():
    with pytest.raises(ConfigError, match="Search mode 'fuzzy' is unknown"):
        SearchSettings(mode="fuzzy")
    with pytest.raises(ConfigError, match="k=0"):
        RAG_SEARCH.changed(k=0)
    with pytest.raises(TypeError):
        SearchSettings().changed(top_k=3)  # a misspelt field is not silently ignored


def test_changed_keeps_the_other_fields_and_to_dict_is_json_ready():
    three = RAG_SEARCH.changed(k=3, filters={"team": "support"})
    assert (three.k, three.min_similarity, three.mode) == (3, DEFAULT_MIN_SIMILARITY, "hybrid")
    assert RAG_SEARCH.k == 5  # the shared default is not changed
    assert json.loads(json.dumps(three.to_dict()))["filters"] == {"team": "support"}


def test_kb_search_takes_settings_and_keyword_changes_alike(refunds_kb):
    by_keywords = refunds_kb.search("refund window", k=1, mode="bm25")
    by_settings = refunds_kb.search("refund window", SearchSettings(k=1, mode="bm25"))
    assert [hit.chunk.chunk_id for hit in by_keywords] == [hit.chunk.chunk_id for hit in by_settings]
    assert by_keywords[0].chunk.source.endswith("policies.md")
    two = refunds_kb.search("refund window", SearchSettings(k=1, mode="bm25"), k=2, mode="dense")
    assert len(two) == 2  # a keyword change wins over the settings given


def test_a_session_searches_every_question_with_its_settings(refunds_kb):
    session = RagSession(refunds_kb, ScriptedModel("45 days."), retrieval=SearchSettings(k=1, mode="bm25"))
    result = session.answer("How long is the refund window?")
    assert len(result.facts["passages"]) == 1 and result.facts["mode"] == "bm25"
    default = RagSession(refunds_kb, ScriptedModel("45 days."))
    assert default.retrieval is RAG_SEARCH and default.facts["k"] == 5


def test_one_shot_answer_changes_search_fields_for_one_call(refunds_kb):
    model = ScriptedModel("The refund window is 45 days.")
    result = answer("How long is the refund window?", refunds_kb, model=model, k=1, mode="bm25",
                    min_similarity=None)
    assert len(result.facts["passages"]) == 1 and result.facts["mode"] == "bm25"
    # An unreachable threshold: nothing retrieved, declined without asking the model.
    declined = answer("How long is the refund window?", refunds_kb, model=model, min_similarity=1.01)
    assert declined.no_answer and len(model.calls) == 1
