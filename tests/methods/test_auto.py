"""infuse-auto: the profile's winner answers; when it declines, the runner-up answers once."""

from __future__ import annotations

import pytest

from infuse.answer import Answer
from infuse.errors import ConfigError
from infuse.methods.auto import AutoMethod
from infuse.methods.profile import MethodScore, choose_profile

NO_ANSWER = "The knowledge base has no answer to this question."


class ScriptedMethod:
    """A method answering a fixed text, streamed word by word (stands in for a model here;
    the real methods are exercised through the server tests)."""

    def __init__(self, name: str, text: str, no_answer: bool = False):
        self.name, self.text, self.no_answer, self.facts = name, text, no_answer, {}
        self.calls = 0

    def answer(self, question, *, history=None, max_new_tokens=None, on_token=None):
        self.calls += 1
        if on_token:
            for word in self.text.split(" "):
                on_token(word + " ")
        return Answer(text=self.text, method=self.name, no_answer=self.no_answer, timings={"total_s": 0.1})


def _profile():
    return choose_profile([
        MethodScore("rag", 0.9, 0.8, 0.95, 40),
        MethodScore("cag", 0.6, 0.5, 0.7, 40),
        MethodScore("base", 0.2, 0.1, 0.3, 40),
    ], winner="rag")


def test_auto_serves_the_winner():
    rag, cag = ScriptedMethod("rag", "45 days [1]"), ScriptedMethod("cag", "45 days")
    auto = AutoMethod(_profile(), {"rag": rag, "cag": cag})
    pieces = []
    answer = auto.answer("refund window?", on_token=pieces.append)
    assert answer.method == "rag" and "fallback_from" not in answer.facts
    assert "".join(pieces).strip() == "45 days [1]"
    assert cag.calls == 0


def test_auto_falls_back_once_when_the_winner_declines():
    rag = ScriptedMethod("rag", NO_ANSWER, no_answer=True)
    cag = ScriptedMethod("cag", "Shipping takes three days.")
    auto = AutoMethod(_profile(), {"rag": rag, "cag": cag})
    pieces = []
    answer = auto.answer("shipping?", on_token=pieces.append)
    assert answer.method == "cag" and answer.facts["fallback_from"] == "rag"
    assert "".join(pieces).strip() == "Shipping takes three days."  # the refusal was held back
    assert (rag.calls, cag.calls) == (1, 1)


def test_auto_stops_after_one_fallback():
    rag = ScriptedMethod("rag", NO_ANSWER, no_answer=True)
    cag = ScriptedMethod("cag", "I don't know", no_answer=True)
    answer = AutoMethod(_profile(), {"rag": rag, "cag": cag}).answer("?")
    assert answer.no_answer and answer.method == "cag" and (rag.calls, cag.calls) == (1, 1)


def test_stream_yields_pieces_then_the_answer():
    auto = AutoMethod(_profile(), {"rag": ScriptedMethod("rag", "a b c"), "cag": ScriptedMethod("cag", "x")})
    items = list(auto.stream("?"))
    assert isinstance(items[-1], Answer) and "".join(items[:-1]).strip() == "a b c"


def test_winner_missing_is_a_clear_error():
    with pytest.raises(ConfigError, match="names 'rag' as the winner"):
        AutoMethod(_profile(), {"cag": ScriptedMethod("cag", "x")})
