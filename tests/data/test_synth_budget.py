"""Question generation sized to the machine: caps, a time budget, sampling that covers every
document, and progress with an estimate (against a real HTTP chat server on 127.0.0.1)."""

from __future__ import annotations

import time

import pytest
from scripted_chat import ScriptedChatServer

from infuse.data import synth
from infuse.errors import ConfigError
from infuse.llm import load_chat_model

# five documents, three sections each: every chunk names its document and section
DOCS = [
    (f"doc{d}.md", "\n\n".join(f"# Part {s}\n\n" + f"Document {d} part {s} costs {d}{s} euros. " * 40
                               for s in range(3)))
    for d in range(5)
]


def reply_from_chunk(messages):
    text = messages[-1]["content"]
    for d in range(5):
        for s in range(3):
            if f"Document {d} part {s}" in text:
                return f"Q: What does document {d} part {s} cost?\nA: {d}{s} euros\n"
    return "nothing"


def test_sample_chunks_covers_every_document_before_repeating():
    chunked = [("a", ["a0", "a1", "a2"]), ("b", ["b0"]), ("c", ["c0", "c1"])]
    picked = synth.sample_chunks(chunked, 3, seed=1)
    assert sorted(source for source, _i, _t in picked) == ["a", "b", "c"]
    everything = synth.sample_chunks(chunked, None, seed=1)
    assert sorted(text for _s, _i, text in everything) == ["a0", "a1", "a2", "b0", "c0", "c1"]
    assert synth.sample_chunks(chunked, None, seed=1) == everything  # seeded


def test_max_pairs_caps_the_work_and_still_covers_every_document():
    assert sum(len(synth.document_chunks(synth.Document(text=t, source=n), 300)) for n, t in DOCS) >= 10
    seen = []
    with ScriptedChatServer(reply_from_chunk) as server:
        result = synth.synthesize_qa(
            DOCS, load_chat_model("w", base_url=server.base_url), per_chunk=1, holdout=0.0,
            max_pairs=5, on_progress=lambda done, total, **info: seen.append((done, total, info)),
        )
        asked = len(server.requests)
    assert len(result.train) == 5 and asked == 5 and result.stopped == "max_pairs"
    assert {pair.source for pair in result.train} == {name for name, _t in DOCS}
    assert result.documents_covered == 5 and result.chunks_asked == 5 and result.chunks > 5
    assert [done for done, _t, _i in seen] == [1, 2, 3, 4, 5]
    assert all(total == seen[0][1] for _d, total, _i in seen)
    assert seen[-1][2]["pairs"] == 5 and "eta_s" in seen[-1][2] and "file" in seen[-1][2]
    assert result.to_dict()["stopped"] == "max_pairs"


def test_time_budget_stops_before_the_next_chunk_would_pass_it():
    def slow(messages):
        time.sleep(0.3)
        return reply_from_chunk(messages)

    with ScriptedChatServer(slow) as server:
        result = synth.synthesize_qa(DOCS, load_chat_model("w", base_url=server.base_url),
                                     per_chunk=1, holdout=0.0, time_budget_s=1.0)
    assert result.stopped == "time_budget"
    assert 1 <= result.chunks_asked <= 3 and result.elapsed_s < 1.5
    assert len(result.train) == result.chunks_asked


def test_max_chunks_and_bad_caps():
    with ScriptedChatServer(reply_from_chunk) as server:
        result = synth.synthesize_qa(DOCS, load_chat_model("w", base_url=server.base_url),
                                     per_chunk=1, holdout=0.0, max_chunks=7)
    assert result.chunks_asked == 7 and result.documents_covered == 5 and result.stopped is None
    for setting in ({"max_pairs": 0}, {"max_chunks": -1}, {"time_budget_s": 0}):
        with pytest.raises(ConfigError, match=next(iter(setting))):
            synth.synthesize_qa(DOCS, None, **setting)
