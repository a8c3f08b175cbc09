"""Quickstart never traps: it picks a CPU subset itself when questions carry no tags (and says
which), trains from the documents when only questions.jsonl is given, names what LoRA needs,
and every step's progress shows as plain lines when output is not a terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted_chat import ScriptedChatServer

from infuse.cli.quickstart import StepProgress
from infuse.errors import DataError
from infuse.eval.questions import load_questions
from infuse.llm import load_chat_model
from infuse.quickstart import CPU_QUESTIONS, _ensure_questions, choose_questions, plan_quickstart


def _folder(tmp_path: Path, questions: list[dict] | None) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(parents=True)
    (folder / "ops.txt").write_text("Backups run at 02:00 every night.", encoding="utf-8")
    if questions is not None:
        (folder / "questions.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in questions), encoding="utf-8")
    return folder


def _rows(count: int, tags: list[str] | None = None) -> list[dict]:
    return [{"id": f"q{i:02d}", "question": f"Question {i}?", "answer": str(i),
             **({"tags": tags} if tags and i % 2 == 0 else {})} for i in range(count)]


def test_untagged_questions_on_a_cpu_get_a_subset_chosen_and_named(tmp_path):
    plan = plan_quickstart(_folder(tmp_path, _rows(30)), output=tmp_path / "out", on_gpu=False)
    said: list[str] = []
    chosen = choose_questions(plan, said.append)
    assert len(chosen) == CPU_QUESTIONS and len({q.id for q in chosen}) == CPU_QUESTIONS
    assert chosen[0].id == "q00" and chosen[-1].id in {"q27", "q28"}  # spread over the set
    assert "--all-questions" in said[0] and "q00" in said[0] and f"{CPU_QUESTIONS} of 30" in said[0]


def test_tagged_questions_keep_their_tag_and_all_questions_takes_every_one(tmp_path):
    folder = _folder(tmp_path, _rows(30, ["cpu"]))
    said: list[str] = []
    chosen = choose_questions(plan_quickstart(folder, output=tmp_path / "a", on_gpu=False), said.append)
    assert [q.id for q in chosen][:2] == ["q00", "q02"] and len(chosen) == 15
    every = choose_questions(
        plan_quickstart(folder, output=tmp_path / "b", on_gpu=False, all_questions=True), said.append)
    assert len(load_questions(every)) == 30


def test_a_tag_filter_that_leaves_none_names_all_questions(tmp_path):
    path = _folder(tmp_path, _rows(3)) / "questions.jsonl"
    with pytest.raises(DataError, match="--all-questions"):
        load_questions(path, tag="cpu")


def test_questions_without_train_data_get_training_pairs_not_new_questions(tmp_path):
    folder = _folder(tmp_path, _rows(5))
    plan = plan_quickstart(folder, output=tmp_path / "out", on_gpu=False, max_pairs=5,
                           synth_budget_s=60)
    said: list[str] = []
    steps: list[tuple] = []
    with ScriptedChatServer(lambda messages: "Q: When do the backups run?\nA: 02:00\n") as server:
        _ensure_questions(plan, said.append, lambda done, total=None, **info: steps.append(info),
                          chat_model=load_chat_model("w", base_url=server.base_url))
    assert plan.questions == folder / "questions.jsonl"  # the user's questions stay the eval set
    rows = [json.loads(line) for line in Path(plan.train_data).read_text().splitlines()]
    assert [row["answer"] for row in rows] == ["02:00"]
    assert any("training pairs from the documents" in line for line in said)
    assert any("at most 5 pairs" in line for line in said)
    assert steps and steps[-1]["step"] == "questions" and "eta_s" in steps[-1]


def test_a_served_only_model_says_what_lora_needs(tmp_path):
    plan = plan_quickstart(_folder(tmp_path, None), output=tmp_path / "out", on_gpu=False,
                           model="llama3.1:8b", base_url="http://127.0.0.1:9/v1")
    assert not plan.trainable
    assert any("lora and lora+rag are skipped: they need a trainable local model" in note
               for note in plan.notes)
    assert plan.notes[0] == "model: llama3.1:8b served at http://127.0.0.1:9/v1"
    assert plan_quickstart(_folder(tmp_path / "x", None), output=tmp_path / "o2",
                           on_gpu=False).trainable


def test_step_progress_prints_plain_lines_per_step_off_a_terminal(capsys):
    with StepProgress() as on_progress:
        on_progress(1, 2, step="questions", file="a.md")
        on_progress(2, 2, step="questions", file="b.md")
        on_progress(1, 1, step="eval", method="rag")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("questions: 1/2") and "left" in err[0]
    assert err[1].startswith("questions: 2/2 done") and err[2].startswith("eval: 1/1 done")
    with StepProgress(enabled=False) as quiet:
        quiet(1, 1, step="eval")
    assert capsys.readouterr().err == ""
