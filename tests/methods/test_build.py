"""The standard methods built from options, shared loads, and evaluate() from Python on a folder."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from at_once import answer_at_once

from infuse.answer import Answer
from infuse.errors import ConfigError
from infuse.methods import (
    DOES_NOT_FIT,
    AnswerMethod,
    MethodOptions,
    ModelMethod,
    SkipMethod,
    build_methods,
)


@pytest.fixture()
def count_model_loads(monkeypatch) -> Counter:
    import infuse.llm

    loads: Counter = Counter()
    real = infuse.llm.load_chat_model

    def load(*args, **kwargs):
        loads["model"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(infuse.llm, "load_chat_model", load)
    return loads


def test_base_rag_and_cag_share_one_model_and_answer_with_history(
    chat_model_dir, docs_dir, kb_dir, count_model_loads
):
    options = MethodOptions(
        model=str(chat_model_dir), knowledge=[docs_dir], kb=str(kb_dir), max_new_tokens=4,
        device="cpu",
    )
    methods, skipped = build_methods(["base", "rag", "cag", "lora"], options)
    assert [m.name for m in methods] == ["base", "rag", "cag"]
    assert [(s.name, "--run" in s.reason) for s in skipped] == [("lora", True)]
    assert count_model_loads["model"] == 0  # nothing opens before setup()
    history = [
        {"role": "user", "content": "Where do parcels ship from?"},
        {"role": "assistant", "content": "Tucson."},
    ]
    for method in methods:
        method.setup()
        assert isinstance(method, AnswerMethod)
        result = method.answer("and how fast?", history=history, max_new_tokens=2)
        assert isinstance(result, Answer) and result.method == method.name
        *pieces, final = list(method.stream("Where is the office?"))
        assert isinstance(final, Answer) and "".join(pieces).strip() == final.text.strip()
    assert count_model_loads["model"] == 1
    rag, cag = methods[1], methods[2]
    assert rag.facts["kb"] == str(kb_dir) and cag.facts["knowledge_tokens"] > 50
    assert cag.facts["context_window"] == 2048
    for method in methods:
        method.close()


def test_cag_that_does_not_fit_is_a_does_not_fit_skip_with_the_numbers(
    tiny_model_dir, docs_dir
):
    (docs_dir / "long.md").write_text("The anvil weighs 9 kg. " * 300, encoding="utf-8")
    [cag], _ = build_methods(["cag"], MethodOptions(model=str(tiny_model_dir), knowledge=[docs_dir]))
    with pytest.raises(SkipMethod) as caught:
        cag.setup()
    skip = caught.value.skip
    assert skip.code == DOES_NOT_FIT and skip.facts["context_window"] == 512
    assert skip.facts["knowledge_tokens"] > 512 and "512-token context window" in skip.reason


def test_cag_from_a_saved_cache(chat_model_dir, docs_dir, tmp_path):
    from infuse.cag import build_cache
    from infuse.methods.build import knowledge_files

    cache = tmp_path / "cache"
    build_cache(knowledge_files([docs_dir]), str(chat_model_dir), cache, device="cpu")
    [cag], _ = build_methods(
        ["cag"], MethodOptions(model=str(chat_model_dir), cag_cache=cache, max_new_tokens=3)
    )
    result = cag.answer("Where is the office?")
    assert result.method == "cag" and result.facts["cache_loaded_from_disk"] is True


def test_a_model_method_answers_threads_like_it_answers_alone(chat_model_dir):
    from infuse.llm import load_chat_model

    method = ModelMethod("base", load_chat_model(str(chat_model_dir), device="cpu"),
                         max_new_tokens=12)
    questions = ["Where is the office?", "What is the capital of France?"]
    alone = {question: method.answer(question).text for question in questions}
    for _round in range(3):
        together = answer_at_once(lambda q: method.answer(q).text, questions)
        assert together == alone


def test_evaluate_from_python_expands_a_folder_and_builds_its_own_knowledge_base(
    chat_model_dir, docs_dir, embedder_dir, tmp_path
):
    from infuse.eval import evaluate

    questions = tmp_path / "qa.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": "Where is the office?", "answer": "Springfield",
                    "source": "office.md"}) + "\n",
        encoding="utf-8",
    )
    options = MethodOptions(
        model=str(chat_model_dir), knowledge=[docs_dir], embedder=str(embedder_dir),
        max_new_tokens=3, device="cpu",
    )
    results = evaluate(questions, methods=["rag", "cag"], options=options)
    assert [m.name for m in results.methods] == ["rag", "cag"] and results.skipped == []
    assert sorted(p.rsplit("/", 1)[-1] for p in results.meta["knowledge"]) == [
        "office.md", "refunds.md", "shipping.md", "warranty.md"
    ]
    from pathlib import Path

    assert not Path(results.meta["kb"]).exists()  # a temporary knowledge base, removed after
    out = tmp_path / "report"
    results = evaluate(questions, methods=["rag"], options=options, output_dir=out)
    assert results.meta["kb"] == str(out / "kb") and (out / "kb").is_dir()
    with pytest.raises(ConfigError, match=r"knowledge .*nowhere.*no such file"):
        evaluate(questions, methods=["rag"], options=MethodOptions(knowledge=[tmp_path / "nowhere"]))


def test_a_system_turn_in_the_history_replaces_the_default_instruction():
    method = ModelMethod("base", None)
    assert method.messages("Why?")[0]["content"] == method.system_prompt
    sent = method.messages("Why?", history=[{"role": "system", "content": "Be brief."}])
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]
