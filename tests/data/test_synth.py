"""`infuse data synth`: documents -> validated, grounded, deduplicated Q/A pairs with a held-out split."""

from __future__ import annotations

import json

import pytest
from scripted_chat import ScriptedChatServer

from infuse.data import synth
from infuse.errors import ConfigError, DataError
from infuse.llm import load_chat_model

REFUNDS = "# Refunds\n\nNew hardware can be returned within 38 days of delivery.\n\nThe board meets every Thursday."
SHIPPING = "# Shipping\n\nShipping is free for orders above EUR 350.\n\nExpress delivery costs EUR 19."

REPLIES = {
    "Refunds": (
        "Q: How many days do customers have to return new hardware?\nA: 38 days\n"
        "Q: On which day does the board meet?\nA: every Thursday\n"
        "Q: What colour is the box?\nA: blue\n"  # not in the text: rejected
    ),
    "Shipping": (
        "1. **Q:** Above what order value is shipping free?\n**A:** EUR 350\n"
        "2. Q: Above what order value is shipping free?\nA: EUR 350\n"  # duplicate
        "Q: Express delivery\nA: EUR 19\n"  # not a question
        "Q: How much does express delivery cost?\nA: EUR 19\n"
    ),
}


def scripted_reply(messages):
    user = messages[-1]["content"]
    return next(text for key, text in REPLIES.items() if key in user)


def test_parse_qa_pairs_reads_common_shapes():
    reply = "Here you go:\nQ: One?\nA: 1\n\n2) Question: Two?\nAnswer: \"2\"\n**Q:** Three?\n**A:** 3"
    assert synth.parse_qa_pairs(reply) == [("One?", "1"), ("Two?", "2"), ("Three?", "3")]
    assert synth.parse_qa_pairs("no pairs in this reply") == []


def test_validate_pair_reasons():
    chunk = "The Sprout S2 battery lasts 19 months."
    assert synth.validate_pair("How long does the battery last?", "19 months", chunk) is None
    assert synth.validate_pair("How long does the battery last?", "20 months", chunk) == "answer not found in the text"
    assert synth.validate_pair("Battery life", "19 months", chunk) == "not a question"
    assert synth.validate_pair("How long does the battery last?", "", chunk) == "empty answer"
    assert synth.validate_pair("What does the Sprout S2 do?", "Sprout S2", chunk) == "answer repeats the question"
    # "19" must match a whole word, not part of "119"
    assert not synth.is_grounded("19", "It lasts 119 days.")


def test_documents_are_cut_by_the_knowledge_chunker_by_section_and_budget():
    from infuse.knowledge import Document
    from infuse.knowledge.chunking import count_tokens

    text = "# A\n\n" + "word " * 50 + "\n\n# B\n\n" + "more " * 200
    chunks = synth.document_chunks(Document(text=text, source="a.md", title="Guide"), max_tokens=80)
    assert chunks[0].startswith("Guide > A") and "more" not in chunks[0]
    assert all(chunk.startswith("Guide > B") for chunk in chunks[1:]) and len(chunks) >= 4
    assert all(count_tokens(chunk) <= 80 for chunk in chunks)
    # no overlap: each word of section B is asked about once
    assert sum(chunk.count("more") for chunk in chunks) == 200


def test_synthesize_with_a_real_http_model(tmp_path):
    documents = [("refunds.md", REFUNDS), ("shipping.md", SHIPPING)]
    with ScriptedChatServer(scripted_reply) as server:
        chat = load_chat_model("writer", base_url=server.base_url)
        result = synth.synthesize_qa(documents, chat, per_chunk=4, holdout=0.25, seed=1)
        assert len(server.requests) == 2
        assert "Write 4 different question/answer pairs" in server.requests[0]["messages"][-1]["content"]
    kept = result.train + result.heldout
    assert sorted(p.answer for p in kept) == ["38 days", "EUR 19", "EUR 350", "every Thursday"]
    assert {p.source for p in kept} == {"refunds.md", "shipping.md"}
    assert len(result.heldout) == 1 and len(result.train) == 3
    assert sorted(why for _q, _a, why in result.rejected) == [
        "answer not found in the text", "duplicate question", "not a question"]
    # the same seed gives the same split
    again = synth.SynthResult()
    with ScriptedChatServer(scripted_reply) as server:
        again = synth.synthesize_qa(documents, load_chat_model("w", base_url=server.base_url),
                                    per_chunk=4, holdout=0.25, seed=1)
    assert [p.question for p in again.heldout] == [p.question for p in result.heldout]


def test_bad_settings_and_inputs(tmp_path):
    with pytest.raises(ConfigError, match="per_chunk=0"):
        synth.synthesize_qa([("a.md", "text")], None, per_chunk=0)
    with pytest.raises(ConfigError, match="holdout=1.5"):
        synth.synthesize_qa([("a.md", "text")], None, holdout=1.5)
    with pytest.raises(DataError, match="does not exist"):
        synth.read_documents([tmp_path / "missing"])
    (tmp_path / "bin.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00bad")
    with pytest.raises(DataError, match="No text found .*bin.md: binary file"):
        synth.read_documents([tmp_path / "bin.md"])


def test_cli_writes_train_and_heldout_files_eval_can_read(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(REFUNDS, encoding="utf-8")
    (docs / "shipping.md").write_text(SHIPPING, encoding="utf-8")
    import click

    from infuse.cli.data_synth import synth as synth_command

    group = click.Group("data", commands={"synth": synth_command})
    out = tmp_path / "qa" / "QA.jsonl"
    with ScriptedChatServer(scripted_reply) as server:
        group.main(["synth", "--knowledge", str(docs), "--output", str(out), "--model", "w",
                    "--base-url", server.base_url, "--per-chunk", "4", "--json"],
                   standalone_mode=False)
    payload = json.loads(capsys.readouterr().out)
    assert (payload["train"], payload["heldout"], payload["rejected"]) == (3, 1, 3)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["messages"][1]["content"] == rows[0]["answer"]
    from infuse.eval.questions import load_questions

    held = load_questions(out.with_name("QA.heldout.jsonl"))
    assert len(held) == 1 and held[0].source in ("refunds.md", "shipping.md")
    with pytest.raises(DataError, match="nope does not exist"):
        group.main(["synth", "--knowledge", str(tmp_path / "nope"), "--output", str(out)],
                   standalone_mode=False)
