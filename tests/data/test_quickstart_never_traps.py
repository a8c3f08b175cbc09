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
                           question_budget_s=60)
    said: list[str] = []
    steps: list[tuple] = []
    with ScriptedChatServer(lambda messages: "Q: When do the backups run?\nA: 02:00\n") as server:
        _ensure_questions(plan, said.append, lambda done, total=None, **info: steps.append(info),
                          chat_model=load_chat_model("w", base_url=server.base_url))
    assert plan.questions == folder / "questions.jsonl"  # the user's questions stay the eval set
    rows = [json.loads(line) for line in Path(plan.train_data).read_text().splitlines()]
    assert [row["answer"] for row in rows] == ["02:00"]
    assert any("training pairs from the documents" in line for line in said)
    assert any(line.startswith("question generation: at most 5 pairs or 60 s (") for line in said)
    assert steps and steps[-1]["step"] == "questions" and "eta_s" in steps[-1]
    assert steps[0] == {"step": "questions"}  # the step's clock starts before the first passage


def test_a_served_only_model_says_what_lora_needs(tmp_path):
    with ScriptedChatServer(lambda messages: "", models=["llama3.1:8b"]) as server:
        plan = plan_quickstart(_folder(tmp_path, None), output=tmp_path / "out", on_gpu=False,
                               model="llama3.1:8b", base_url=server.base_url)
        assert not plan.trainable
        assert any("lora and lora+rag are skipped: they need a trainable local model" in note
                   for note in plan.notes)
        assert plan.notes[0] == f"model: llama3.1:8b served at {server.base_url} (base, rag, cag)"
        assert not any("lists" in note for note in plan.notes)  # the server knows the name
        other = plan_quickstart(_folder(tmp_path / "y", None), output=tmp_path / "o3",
                                on_gpu=False, model="qwen3:4b", base_url=server.base_url)
    assert any(note.startswith(f"the server at {server.base_url} lists llama3.1:8b, not "
                               "'qwen3:4b'") for note in other.notes)
    with ScriptedChatServer(lambda messages: "") as no_list:  # no /v1/models: nothing to check
        quiet = plan_quickstart(_folder(tmp_path / "z", None), output=tmp_path / "o4",
                                on_gpu=False, model="qwen3:4b", base_url=no_list.base_url)
    assert not any("lists" in note for note in quiet.notes)
    assert plan_quickstart(_folder(tmp_path / "x", None), output=tmp_path / "o2",
                           on_gpu=False).trainable


def test_a_base_url_where_nothing_listens_fails_before_any_work(tmp_path):
    from infuse.errors import BackendError

    with pytest.raises(BackendError, match=r"Cannot reach the chat server at http://127.0.0.1:9/v1 "
                       r"\(ConnectError.*or fix --base-url"):
        plan_quickstart(_folder(tmp_path, None), output=tmp_path / "out", on_gpu=False,
                        base_url="http://127.0.0.1:9/v1")
    assert not (tmp_path / "out" / "kb").exists()


def test_step_progress_prints_plain_lines_per_step_off_a_terminal(capsys):
    with StepProgress() as on_progress:
        on_progress(1, 2, step="questions", file="a.md")
        on_progress(2, 2, step="questions", file="b.md")
        on_progress(1, 1, step="eval", method="rag")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("questions: 1/2") and "left" in err[0]
    assert err[1].startswith("questions: 2/2 done") and err[2].startswith("eval: 1/1 done")
    with StepProgress() as on_progress:  # a step's begin is silent; its own estimate wins
        on_progress(0, None, step="questions")
        on_progress(1, 80, step="questions", eta_s=42.0)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("questions: 1/80") and "about 42 s left" in err[0]
    with StepProgress(enabled=False) as quiet:
        quiet(1, 1, step="eval")
    assert capsys.readouterr().err == ""


def test_a_handful_of_training_pairs_trains_without_an_eval_split(tmp_path):
    """Question generation on a tiny folder can keep one pair: holding 10% of one row out for
    the eval loss stopped quickstart with `eval_split=0.1 leaves no training rows out of 1`."""
    from infuse.quickstart import _training_config

    plan = plan_quickstart(_folder(tmp_path, None), output=tmp_path / "out", on_gpu=False)
    row = {"messages": [{"role": "user", "content": "When do backups run?"},
                        {"role": "assistant", "content": "At 02:00."}]}
    for count, split in ((1, 0.0), (9, 0.0), (10, 0.1)):
        plan.train_data = tmp_path / f"train{count}.jsonl"
        plan.train_data.write_text((json.dumps(row) + "\n\n") * count)  # blank lines: no rows
        assert _training_config(plan).eval_split == split, count


def test_a_new_total_in_a_step_starts_a_new_clock(capsys, monkeypatch):
    """eval's forgetting check (16 questions) follows its answers (50) in the same step: its
    estimate must come from its own pace, not from the minutes the answers took."""
    import infuse.cli.progress as progress

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    with StepProgress() as on_progress:
        on_progress(0, None, step="eval")
        clock[0] += 500
        on_progress(50, 50, step="eval", method="lora+rag")
        clock[0] += 20
        on_progress(1, 16, step="eval", method="forgetting")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("eval: 50/50 done in 500 s")
    assert err[1] == "eval: 1/16, 20 s elapsed, about 300 s left (forgetting)"
