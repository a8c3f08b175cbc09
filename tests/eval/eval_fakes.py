"""Methods built for the tests: they answer from fixed dicts, really sleep, and cite passages."""

from __future__ import annotations

import time

from infuse.answer import Answer, Citation
from infuse.eval.questions import EvalQuestion

QUESTIONS = [
    EvalQuestion("q1", "How long is the refund window?", "38 days", ["38"], "refund-policy.md"),
    EvalQuestion("q2", "Who chairs the board?", "Oskar Lindqvist", [], "refund-policy.md"),
    EvalQuestion("q3", "What is the mascot called?", "Pip", [], "handbook.md"),
    EvalQuestion("q4", "How many sensors per hub?", "64", [], "products.md"),
]


class DictMethod:
    """Answers from a {question id: text} dict after sleeping `delay_s`; cites `passages`."""

    def __init__(self, name, answers, *, delay_s=0.0, passages=None, facts=None, ttft_s=None):
        self.name = name
        self.answers = answers
        self.delay_s = delay_s
        self.passages = passages or {}
        self.facts = dict(facts or {})
        self.ttft_s = ttft_s
        self.setup_calls = 0
        self._by_question = {q.question: q.id for q in QUESTIONS}

    def setup(self):
        self.setup_calls += 1

    def answer(self, question: str) -> Answer:
        qid = self._by_question[question]
        time.sleep(self.delay_s)
        citations = [
            Citation(number=i + 1, source=source, text=text)
            for i, (source, text) in enumerate(self.passages.get(qid, []))
        ]
        timings = {"total_s": self.delay_s}
        if self.ttft_s is not None:
            timings["time_to_first_token_s"] = self.ttft_s
        return Answer(text=self.answers.get(qid, "I don't know."), method="?", citations=citations,
                      timings=timings)
