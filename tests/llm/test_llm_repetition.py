"""The repetition guard: the rule itself, and every backend's answer cut where it starts repeating."""

from __future__ import annotations

import pytest

from infuse.llm.repetition import RepetitionGuard, trim_repetition

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("The answer: " + "The refund window is 45 days. " * 6, "The answer: The refund window is 45 days."),
        ("The answer is " + "anvil_" * 20, "The answer is anvil_"),
        ("Yes." + "\n" * 80, "Yes.\n"),
    ],
)
def test_a_repeating_text_keeps_one_copy(text, kept):
    assert trim_repetition(text) == (kept, True)


def test_a_name_said_twice_is_not_a_repeat():
    text = (
        "See /usr/share/doc/git/html/git-blame.html for blame, and again "
        "/usr/share/doc/git/html/git-blame.html for its options."
    )
    assert trim_repetition(text) == (text, False)
    assert trim_repetition("x" * 100, window=None) == ("x" * 100, False)


def test_the_guard_checks_every_length_it_skipped():
    guard = RepetitionGuard(window=8)
    text = "abcdefgh-" + "abcdefgh" * 3
    assert guard.check(text[:10]) is None
    keep = guard.check(text)  # many characters at once, as a multi-character token brings
    assert keep == RepetitionGuard(window=8).check(text) == len("abcdefgh-")


def test_the_local_model_stops_where_it_starts_repeating(tiny_model_dir):
    from infuse.llm import load_chat_model
    from infuse.llm.local import LocalChatModel

    guarded = load_chat_model(str(tiny_model_dir), device="cpu")
    unguarded = LocalChatModel(guarded.model, guarded.tokenizer, repetition_window=None)
    runaway = unguarded.generate(QUESTION, max_new_tokens=200)
    assert runaway.extra["finish_reason"] == "length"  # the random model loops to the limit
    expected, repeated = trim_repetition(runaway.text)
    assert repeated

    pieces: list[str] = []
    answer = guarded.generate(QUESTION, max_new_tokens=200, on_token=pieces.append)
    assert answer.extra["finish_reason"] == "repetition"
    assert answer.text == expected
    assert "".join(pieces) == answer.text  # nothing streamed that the cut took back
    assert answer.completion_tokens < runaway.completion_tokens
    kept_ids = answer.extra["token_ids"]
    assert kept_ids == runaway.extra["token_ids"][: len(kept_ids)]
    assert guarded.tokenizer.decode(kept_ids, skip_special_tokens=True).startswith(answer.text)


def test_the_cut_never_falls_inside_a_word():
    assert trim_repetition("Anvil " + "anvil " * 20) == ("Anvil anvil", True)
