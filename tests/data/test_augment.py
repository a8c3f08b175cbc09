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


def test_raft_rows_over_retrieved_passages_keep_those_that_hold_the_answer():
    shown = {"How heavy is the Dewpoint D1?": ["Dewpoint D1\nWeight: 42 grams.", "Refunds: 38 days."],
             "How long is the refund window?": ["Dewpoint D1\nWeight: 42 grams."]}  # missed
    rows = synth.raft_rows(ROWS, DOCS, retrieve=lambda question: shown[question])
    assert len(rows) == 1
    system, user, assistant = rows[0]["messages"]
    assert system["content"].endswith("Dewpoint D1\nWeight: 42 grams.\n\nRefunds: 38 days.")
    assert user["content"] == "How heavy is the Dewpoint D1?"
    assert assistant["content"] == "The Dewpoint D1 weighs 42 grams."


def test_raft_max_rows_takes_every_fact_once_before_repeats():
    twice = [ROWS[0], dict(ROWS[0]), ROWS[1]]
    rows = synth.raft_rows(twice, DOCS, max_rows=2)
    assert sorted(r["messages"][-1]["content"] for r in rows) == ["38 days", "The Dewpoint D1 weighs 42 grams."]


NAMED_DOCS = [
    Document(text="# Products\n\nThe Sprout S2 lasts 19 months. The Dewpoint D1 weighs 42 grams. "
             "Sprout S2 units hold two patents.\n", source="/docs/products.md"),
]


def test_decline_rows_ask_about_the_documents_names_and_what_no_document_holds():
    rows = synth.decline_rows(NAMED_DOCS, count=12, asked=["How long does the Dewpoint D1 last?"])
    assert len(rows) == 12
    questions = [r["messages"][0]["content"] for r in rows]
    assert all("Sprout S2" in q or "Dewpoint D1" in q for q in questions)
    assert not any("patent" in q for q in questions)  # the documents speak of patents
    assert {r["messages"][1]["content"] for r in rows} == {synth.DECLINE_ANSWER}
    assert {r["augmentation"] for r in rows} == {"decline"}
    assert synth.document_names(NAMED_DOCS, asked=["Is the Dewpoint D1 waterproof?"])[0] == "Dewpoint D1"
    assert synth.decline_rows(DOCS[1:], count=5) == []  # no names: nothing to ask about


def test_augment_rows_mixes_every_kind_and_writes_jsonl(tmp_path):
    rows = synth.augment_rows(ROWS, DOCS, variants=2)
    kinds = Counter(r["augmentation"] for r in rows)
    assert kinds["original"] == 2 and kinds["paraphrase"] == 4 and kinds["raft"] == 2
    assert kinds["restatement"] >= 4
    path = synth.write_rows(rows, tmp_path / "aug.jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    assert synth.augmented_path(tmp_path / "qa.jsonl").name == "qa.augmented.jsonl"


def test_quickstart_trains_on_the_augmented_rows(tmp_path):
    from infuse.quickstart import _augment_training, _training_config, plan_quickstart

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "refund.md").write_text("# Refunds\n\nThe refund window is 38 days.\n")
    (folder / "train.jsonl").write_text(json.dumps(ROWS[1]) + "\n")
    (folder / "questions.jsonl").write_text(json.dumps({"question": "Refund window?", "answer": "38 days"}) + "\n")
    (folder / "products.md").write_text(NAMED_DOCS[0].text)
    plan = plan_quickstart(folder, output=tmp_path / "out", on_gpu=False)
    assert plan.augment and plan.epochs == 6  # the CPU recipe is the default
    config = _training_config(plan)
    assert config.packing and config.batch_size == 1  # a CPU computes padding: rows are packed
    said: list[str] = []
    _augment_training(plan, said.append)
    assert plan.train_data == tmp_path / "out" / "train-augmented.jsonl"
    kinds = Counter(json.loads(line)["augmentation"] for line in plan.train_data.read_text().splitlines())
    assert kinds["original"] == 1 and kinds["raft"] == 1 and "paraphrase" not in kinds
    assert kinds["decline"] == 8  # at least MIN_DECLINES, about the documents' names
    assert "raft: questions over the passages" in said[0] and "8 decline" in said[0]
    # the packaged base answers general questions; its right answers keep it from forgetting
    assert kinds["replay"] == 8 and "8 replay" in said[0]
    replay = [json.loads(line) for line in plan.train_data.read_text().splitlines()
              if json.loads(line)["augmentation"] == "replay"]
    assert all(row["messages"][1]["content"] for row in replay)
    gpu = plan_quickstart(folder, output=tmp_path / "gpu", on_gpu=True)
    _augment_training(gpu, said.append)
    kinds = Counter(json.loads(line)["augmentation"] for line in gpu.train_data.read_text().splitlines())
    assert kinds["paraphrase"] == 2 and kinds["restatement"] >= 2 and gpu.epochs == 8
    bare = plan_quickstart(folder, output=tmp_path / "bare", on_gpu=False, augment=False)
    _augment_training(bare, said.append)
    assert bare.train_data == folder / "train.jsonl" and bare.epochs == 3


def test_quickstart_fits_the_sequence_length_to_its_longest_row(tmp_path, tiny_model_dir):
    """Real documents' passages in a RAFT row can run past 512 tokens: quickstart raises the
    packed length to fit (the trainer would refuse the row), in steps of 64."""
    from dataclasses import replace

    from infuse.quickstart import (
        MAX_SEQ_LEN,
        _fit_sequence_length,
        _training_config,
        plan_quickstart,
    )

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "refund.md").write_text("# Refunds\n\nThe refund window is 38 days.\n")
    passages = " ".join(["the refund window is thirty eight days"] * 30)  # ~700 tiny tokens
    rows = [{"messages": [{"role": "system", "content": passages},
                          {"role": "user", "content": "How long is the refund window?"},
                          {"role": "assistant", "content": "38 days."}]},
            {"messages": [{"role": "user", "content": "Refund window?"},
                          {"role": "assistant", "content": "38 days."}]}]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    plan = plan_quickstart(folder, output=tmp_path / "out", on_gpu=False, model=str(tiny_model_dir))
    config = _training_config(plan)
    fitted = _fit_sequence_length(config)
    assert fitted.max_seq_len > 512 and fitted.max_seq_len % 64 == 0
    from infuse.train.examples import build_token_data
    from infuse.train.model import load_tokenizer_for

    data = build_token_data(fitted, load_tokenizer_for(tiny_model_dir))  # the trainer accepts it
    assert max(len(example.input_ids) for example in data.train + data.eval) <= fitted.max_seq_len
    short = replace(config, data=str(tmp_path / "short.jsonl"))
    (tmp_path / "short.jsonl").write_text(json.dumps(rows[1]) + "\n")
    assert _fit_sequence_length(short).max_seq_len == 512  # short rows keep the packed 512
    assert fitted.max_seq_len <= MAX_SEQ_LEN
