"""`infuse eval` end to end on a tiny random model: real generation, real CAG, real files."""

from __future__ import annotations

import json

import pytest
from tiny_models import build_tiny_model, build_tiny_tokenizer

from infuse.cli import main
from infuse.train.config import RunConfig
from infuse.train.runs import RunRecord

KNOWLEDGE = "# Refunds\n\nThe refund window is 45 days.\n"
QUESTIONS = [
    {"id": "a", "question": "What is the refund window?", "answer": "45 days", "source": "refunds.md"},
    {"id": "b", "question": "What is the capital of France?", "answer": "Paris", "tags": ["cpu"]},
]


@pytest.fixture(scope="module")
def long_context_model_dir(tmp_path_factory):
    """The tiny chat model with room for CAG's question and answer budget."""
    path = tmp_path_factory.mktemp("tiny-long")
    tokenizer = build_tiny_tokenizer()
    build_tiny_model(tokenizer, max_position_embeddings=2048).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def inputs(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "refunds.md").write_text(KNOWLEDGE, encoding="utf-8")
    questions = tmp_path / "qa.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    run = tmp_path / "run"
    RunRecord(config=RunConfig(), status="running").write(run)  # a run still training: no adapter yet
    run.joinpath("metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 3.0 - s / 10, "eval_loss": 3.1 - s / 20}) + "\n"
                for s in range(1, 6)), encoding="utf-8")
    return tmp_path


def test_eval_json_with_base_and_cag(inputs, long_context_model_dir, capsys):
    out = inputs / "report"
    code = main(["eval", "--questions", str(inputs / "qa.jsonl"), "--knowledge", str(inputs / "docs"),
                 "--model", str(long_context_model_dir), "--methods", "base,cag,rag,lora",
                 "--run", str(inputs / "run"), "--max-new-tokens", "8", "--output", str(out), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in payload["methods"]] == ["base", "cag", "rag"]
    cag = payload["methods"][1]
    assert cag["questions"] == 2 and cag["facts"]["knowledge_tokens"] > 0
    assert all(m["total_mean_s"] > 0 for m in payload["methods"])
    skipped = {s["name"]: s for s in payload["skipped"]}
    rag = payload["methods"][2]
    assert rag["questions"] == 2  # RAG ran over a knowledge base built from --knowledge
    assert (out / "kb").is_dir()
    assert skipped["lora"]["code"] == "failed"  # the run folder has metrics but no adapter
    assert len(payload["training_curve"]) == 5
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["methods"] == payload["methods"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<figure id="plot-loss"><svg' in html and ">cag<" in html
    profile = json.loads((out / "profile.json").read_text(encoding="utf-8"))
    assert {m["name"] for m in profile["methods"]} == {"base", "cag", "rag"}
    assert all(m["low"] <= m["score"] <= m["high"] for m in profile["methods"])
    assert profile["winner"] in {"base", "cag", "rag"} and profile["rebuild"]["kb"] == str(out / "kb")


def test_eval_cag_that_does_not_fit_is_diagnosed(inputs, tiny_model_dir, capsys):
    (inputs / "docs" / "long.md").write_text("The anvil weighs 9 kg. " * 400, encoding="utf-8")
    code = main(["eval", "--questions", str(inputs / "qa.jsonl"), "--knowledge", str(inputs / "docs"),
                 "--model", str(tiny_model_dir), "--methods", "base,cag", "--subset", "cpu",
                 "--max-new-tokens", "4", "--output", str(inputs / "r2")])
    assert code == 0
    text = capsys.readouterr().out
    assert "skipped cag" in text and "512-token context window" in text
    assert "does not fit the context window" in text
    assert "report.html" in text


def test_eval_bad_input_is_one_clear_line(inputs, capsys):
    assert main(["eval", "--questions", str(inputs / "missing.jsonl")]) == 1
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    assert main(["eval", "--questions", str(inputs / "qa.jsonl"), "--methods", "base,rgx"]) == 1
    assert "unknown rgx" in capsys.readouterr().err
    (inputs / "bad.jsonl").write_text('{"question": "Q?", "answer": "A"}\n{oops\n')
    assert main(["eval", "--questions", str(inputs / "bad.jsonl")]) == 1
    assert "bad.jsonl, line 2: invalid JSON" in capsys.readouterr().err


def test_retrieval_subcommand_is_attached_when_its_module_exists(monkeypatch, capsys):
    import sys
    import types

    import click

    @click.command("retrieval")
    @click.option("--queries")
    def retrieval(queries):
        click.echo(f"retrieval eval on {queries}")

    module = types.ModuleType("infuse.cli.eval_retrieval")
    module.retrieval = retrieval
    monkeypatch.setitem(sys.modules, "infuse.cli.eval_retrieval", module)
    assert main(["eval", "retrieval", "--queries", "q.jsonl"]) == 0
    assert "retrieval eval on q.jsonl" in capsys.readouterr().out
