"""RagSession: opened once (knowledge base, embedder, model), asked many times, from several
threads at once, with follow-up questions retrieved on their subject."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from at_once import answer_at_once
from scripted_model import ScriptedModel

from infuse.answer import Answer
from infuse.knowledge.retrieval import SearchSettings
from infuse.rag import RagSession, is_follow_up, retrieval_query

QUESTIONS = [
    "When is a refund paid back?",
    "Where do parcels ship from?",
    "Where is the office?",
    "What does the warranty cover?",
]


@pytest.fixture()
def count_loads(monkeypatch) -> Counter:
    """Counts real loads: every SentenceTransformer built and every chat model loaded."""
    import sentence_transformers

    import infuse.llm

    loads: Counter = Counter()
    real_embedder, real_chat = sentence_transformers.SentenceTransformer, infuse.llm.load_chat_model

    def embedder(*args, **kwargs):
        loads["embedder"] += 1
        return real_embedder(*args, **kwargs)

    def chat(*args, **kwargs):
        loads["model"] += 1
        return real_chat(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", embedder)
    monkeypatch.setattr(infuse.llm, "load_chat_model", chat)
    return loads


def test_one_session_loads_the_embedder_and_the_model_once_for_20_questions(
    kb_dir, chat_model_dir, count_loads
):
    from infuse.rag import answer

    with RagSession(
        kb_dir, str(chat_model_dir), device="cpu", max_new_tokens=3, retrieval=SearchSettings()
    ) as session:
        assert count_loads == {"embedder": 1, "model": 1}  # opened: both loaded, once
        for number in range(20):
            result = session.answer(QUESTIONS[number % len(QUESTIONS)])
            assert isinstance(result, Answer) and result.method == "rag"
            assert result.facts["passages"] and result.timings["generation_s"] > 0
    assert count_loads == {"embedder": 1, "model": 1}
    # The one-shot function is a session per call: it loads both again, every time.
    for question in QUESTIONS[:2]:
        answer(question, kb_dir, model=str(chat_model_dir), max_new_tokens=2, min_similarity=None)
    assert count_loads == {"embedder": 3, "model": 3}


def test_two_threads_asking_one_session_at_once_get_their_own_answers(kb_dir, chat_model_dir):
    session = RagSession(
        kb_dir, str(chat_model_dir), device="cpu", max_new_tokens=16, retrieval=SearchSettings(mode="bm25")
    )
    first, second = QUESTIONS[0], QUESTIONS[2]
    alone = {question: session.answer(question) for question in (first, second)}
    assert alone[first].facts["passages"][0]["source"].endswith("refunds.md")
    assert alone[second].facts["passages"][0]["source"].endswith("office.md")
    for _round in range(3):
        together = answer_at_once(session.answer, [first, second])
        for question in (first, second):
            got, expected = together[question], alone[question]
            assert got.text == expected.text  # greedy: the same tokens as when asked alone
            assert got.facts["passages"] == expected.facts["passages"]
            assert got.facts["retrieval_query"] == question
    session.close()


def test_two_sessions_over_one_knowledge_base_take_turns_searching(kb_dir, chat_model_dir):
    """rag and lora+rag share one KnowledgeBase object: four threads, two sessions, at once."""
    from infuse.llm import load_chat_model
    from infuse.methods import open_knowledge_base

    kb = open_knowledge_base(kb_dir)
    model = load_chat_model(str(chat_model_dir), device="cpu")
    sessions = [
        RagSession(kb, model, name=name, max_new_tokens=6, retrieval=SearchSettings())
        for name in ("rag", "lora+rag")
    ]
    assert sessions[0]._retrieval_lock is sessions[1]._retrieval_lock  # one lock per kb object
    alone = {
        (session.name, question): session.answer(question).facts["passages"]
        for session in sessions
        for question in QUESTIONS[:2]
    }

    def ask(key: str):
        name, question = key.split("|")
        session = sessions[0] if name == "rag" else sessions[1]
        return session.answer(question).facts["passages"]

    keys = [f"{name}|{question}" for name in ("rag", "lora+rag") for question in QUESTIONS[:2]]
    for _round in range(2):
        together = answer_at_once(ask, keys)
        assert {tuple(key.split("|")): value for key, value in together.items()} == alone
    kb.close()


def test_a_follow_up_is_retrieved_on_the_subject_of_the_earlier_turn(kb_dir):
    model = ScriptedModel("Ten business days [1].")
    history = [
        {"role": "user", "content": "How do I request a refund?"},
        {"role": "assistant", "content": "Email refunds@acme.test with the order number [1]."},
    ]
    with RagSession(kb_dir, model, retrieval=SearchSettings(mode="bm25", k=1)) as session:
        alone = session.answer("and how long does that take?")
        followed = session.answer("and how long does that take?", history=history)
    assert not alone.facts["passages"][0]["source"].endswith("refunds.md")
    assert followed.facts["retrieval_query"] == (
        "How do I request a refund? and how long does that take?"
    )
    assert followed.facts["passages"][0]["source"].endswith("refunds.md")
    assert Path(followed.citations[0].source).name == "refunds.md"
    # The model sees the conversation: system (with the passages), the earlier turns, the question.
    messages = model.calls[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1:3] == history
    assert messages[-1]["content"] == "and how long does that take?"


def test_follow_up_rule():
    assert is_follow_up("and how long does that take?")
    assert is_follow_up("What about shipping?") and is_follow_up("Why?")
    assert is_follow_up("Is it free?")
    assert not is_follow_up("Who founded the company in 1999?")
    assert not is_follow_up("How long does a refund take?")
    history = [
        {"role": "user", "content": "Where do parcels ship from?"},
        {"role": "assistant", "content": "Tucson."},
        {"role": "user", "content": "and how fast?"},
        {"role": "assistant", "content": "Three days."},
    ]
    # A chain of follow-ups reaches back to the question that named the subject.
    assert retrieval_query("Does it cost extra?", history) == (
        "Where do parcels ship from? and how fast? Does it cost extra?"
    )
    assert retrieval_query("What does the warranty cover?", history) == (
        "What does the warranty cover?"
    )
    assert retrieval_query("Is it free?", []) == "Is it free?"


def test_stream_yields_the_pieces_then_the_answer_and_closing_it_stops_the_model(
    kb_dir, chat_model_dir
):
    grounded = RagSession(
        kb_dir, str(chat_model_dir), device="cpu", retrieval=SearchSettings(mode="bm25")
    )
    *pieces, final = list(grounded.stream(QUESTIONS[1], max_new_tokens=12))
    # Grounded: checked first, then streamed as one piece (the answer or the decline).
    assert len(pieces) == 1 and pieces[0] == final.text
    # Ungrounded: streamed live, piece by piece.
    session = RagSession(
        kb_dir, grounded.model, grounded=False, retrieval=SearchSettings(mode="bm25")
    )
    items = list(session.stream(QUESTIONS[1], max_new_tokens=12))
    *pieces, final = items
    assert isinstance(final, Answer) and all(isinstance(piece, str) for piece in pieces)
    assert "".join(pieces).strip() == final.text and pieces
    # A reader that goes away after two pieces: the generation stops there, not at 400 tokens.
    session.model.end_ids = set()  # never an early end: only the closed stream can stop it
    produced: list[str] = []
    stream = session.stream(QUESTIONS[1], max_new_tokens=400, on_token=produced.append)
    assert isinstance(next(stream), str) and isinstance(next(stream), str)
    stream.close()
    for _wait in range(100):
        if not any(t.name == "infuse-answer-stream" for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "infuse-answer-stream" for t in threading.enumerate())
    assert len(produced) < 20


def test_history_turns_are_checked(kb_dir):
    from infuse.errors import ConfigError

    with RagSession(kb_dir, ScriptedModel("x"), retrieval=SearchSettings(mode="bm25")) as session:
        with pytest.raises(ConfigError, match=r"history turn 0 .*role"):
            session.answer("Where is the office?", history=[{"from": "human", "value": "hi"}])


def test_passages_are_what_the_model_is_shown_and_load_no_model(kb_dir, count_loads):
    from infuse.rag import PASSAGES_GIVEN, build_messages

    with RagSession(kb_dir, lazy=True, retrieval=SearchSettings()) as session:
        question = "When is a refund paid back?"
        texts = session.passages(question)
        assert len(texts) == PASSAGES_GIVEN
        system = build_messages(question, session.search(question)[:PASSAGES_GIVEN])[0]["content"]
        assert system.endswith("\n\n".join(texts))
        assert count_loads["model"] == 0  # training rows are built without the chat model
