"""Knowledge-injection augmentation and RAFT rows: many wordings of each fact, the passages
restated, and questions asked over passages (with distractors) the way RAG asks them."""

from __future__ import annotations

import json
from collections import Counter

from infuse.conversation import PASSAGES_PROMPT
from infuse.data import synth
from infuse.knowledge.documents import Document

DOCS = [
    Document(
        text="# Products\n\n## Sprout S2\n\nBattery life: 19 months.\n\n## Dewpoint D1\n\nWeight: 42 grams.\n",
        source="/docs/products.md",
    ),
    Document(text="# Refunds\n\nThe refund window is 38 days.\n", source="/docs/refund.md"),
]
ROWS = [
    {"messages": [{"role": "user", "content": "How heavy is the Dewpoint D1?"},
                  {"role": "assistant", "content": "The Dewpoint D1 weighs 42 grams."}],
     "source": "products.md"},
    {"question": "How long is the refund window?", "answer": "38 days", "source": "refund.md"},
]


def test_paraphrases_keep_the_answer_and_vary_the_question():
    rows = synth.paraphrase_rows(ROWS, variants=3)
    assert len(rows) == 6
    first = [r for r in rows if "Dewpoint" in r["messages"][0]["content"]]
    assert len({r["messages"][0]["content"] for r in first}) == 3
    assert all(r["messages"][0]["content"] != "How heavy is the Dewpoint D1?" for r in first)
    assert {r["messages"][1]["content"] for r in first} == {"The Dewpoint D1 weighs 42 grams."}


def test_restatements_answer_with_each_passage():
    rows = synth.restatement_rows(DOCS)
    answers = [r["messages"][1]["content"] for r in rows]
    assert any("19 months" in a for a in answers) and any("38 days" in a for a in answers)
    assert any(r["messages"][0]["content"] == "Tell me what you know about Dewpoint D1." for r in rows)


def test_raft_rows_ask_over_the_right_passage_and_distractors():
    rows = synth.raft_rows(ROWS, DOCS, distractors=1)
    assert len(rows) == 2
    for row, fact in zip(rows, ("42 grams", "38 days"), strict=True):
        system, user, assistant = row["messages"]
        assert system["role"] == "system" and system["content"].startswith(PASSAGES_PROMPT)
        assert fact in system["content"]  # the passage that holds the answer is given
        assert system["content"].count("\n\n") >= 2  # ... with a distractor beside it
        assert assistant["content"].endswith(fact) or fact in assistant["content"]
        assert user["role"] == "user" and user["content"].endswith("?")


def test_raft_leaves_out_rows_no_passage_supports():
    unsupported = [{"question": "Who is the CFO?", "answer": "Zelda Quux"}]
    assert synth.raft_rows(unsupported, DOCS) == []


def test_augment_rows_mixes_every_kind_and_writes_jsonl(tmp_path):
    rows = synth.augment_rows(ROWS, DOCS, variants=2)
    kinds = Counter(r["augmentation"] for r in rows)
    assert kinds["original"] == 2 and kinds["paraphrase"] == 4 and kinds["raft"] == 2
    assert kinds["restatement"] >= 4
    path = synth.write_rows(rows, tmp_path / "aug.jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    assert synth.augmented_path(tmp_path / "qa.jsonl").name == "qa.augmented.jsonl"


def test_quickstart_trains_on_the_augmented_rows(tmp_path):
    from infuse.quickstart import _augment_training, plan_quickstart

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "refund.md").write_text("# Refunds\n\nThe refund window is 38 days.\n")
    (folder / "train.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    (folder / "questions.jsonl").write_text(json.dumps({"question": "Refund window?", "answer": "38 days"}) + "\n")
    assert not plan_quickstart(folder, output=tmp_path / "cpu", on_gpu=False).augment  # opt-in on a CPU
    plan = plan_quickstart(folder, output=tmp_path / "out", on_gpu=False, augment=True)
    assert plan.augment and plan.epochs == 1
    said: list[str] = []
    _augment_training(plan, said.append)
    assert plan.train_data == tmp_path / "out" / "train-augmented.jsonl"
    kinds = Counter(json.loads(line)["augmentation"] for line in plan.train_data.read_text().splitlines())
    assert kinds["original"] == 1 and kinds["raft"] == 1 and kinds["paraphrase"] == 2
    assert "RAFT" in said[0]
    bare = plan_quickstart(folder, output=tmp_path / "bare", on_gpu=False, augment=False)
    _augment_training(bare, said.append)
    assert bare.train_data == folder / "train.jsonl" and bare.epochs == 3
