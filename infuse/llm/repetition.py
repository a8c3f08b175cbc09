"""Stop an answer that starts repeating itself, and keep the part before the repeat.

Small models (the packaged 135M one above all) fall into loops: a sentence said again and again,
or a fragment like "anvil_anvil_anvil" until the token limit, which costs minutes on a CPU. The
guard watches the answer's text as it grows: when its last `window` characters already appeared
earlier in the answer, the answer is repeating, and it is cut where the repeat began (at the end
of a word, not inside one), so one copy of the repeated part is kept.

It works on text, not token ids, so one rule serves every backend: the local token loop, llama.cpp
and a streamed OpenAI-compatible server. Sampling penalties (repeat/frequency penalty) change which
tokens are picked; this guard only decides when to stop, so greedy answers stay what they were up
to the repeat. A 48-character window is about 12 tokens: short enough to catch a repeated sentence
early, long enough that a name or path mentioned twice does not end an answer. Structured (JSON)
output turns the guard off: its keys and punctuation repeat by design.
"""

from __future__ import annotations

import time

DEFAULT_WINDOW = 48
"""Characters whose second occurrence counts as a repeat (0 or None turns the guard off)."""


class RepetitionGuard:
    """Finds where a growing text starts repeating itself.

    Feed it the whole text so far after each step; `check(text)` returns the length to keep
    when the text has come to end in a repeat (its last `window` characters, at any length since
    the previous check, occurred earlier in it), else None. A streamer must not emit the last
    `hold_back` characters yet: a later cut may remove them.
    """

    def __init__(self, window: int | None = DEFAULT_WINDOW) -> None:
        self.window = window or 0
        self._checked = 0

    @property
    def hold_back(self) -> int:
        """Characters at the end of the text that a later cut may still remove."""
        return self.window

    def check(self, text: str) -> int | None:
        """The length of `text` to keep when it has started repeating, else None."""
        window = self.window
        if window <= 0:
            return None
        start = max(window + 1, self._checked + 1)
        self._checked = len(text)
        for end in range(start, len(text) + 1):
            tail_start = end - window
            tail = text[tail_start:end]
            if text.find(tail, 0, end - 1) != -1:
                return _word_end(text, tail_start)
        return None


class GuardedText:
    """An answer arriving in pieces, cut where it starts repeating itself.

    `on_token` (when given) receives only text that a later cut cannot take back, and the rest
    at `finish()`. `pieces` counts the pieces added; `first_at` is when the first came
    (`time.perf_counter()`).
    """

    def __init__(self, guard: RepetitionGuard, on_token=None) -> None:
        self.guard = guard
        self.on_token = on_token
        self.text = ""
        self.emitted = 0
        self.pieces = 0
        self.first_at: float | None = None

    def add(self, piece: str) -> bool:
        """Append `piece`; False when the answer has started repeating (it is cut before it)."""
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.pieces += 1
        self.text += piece
        keep = self.guard.check(self.text)
        if keep is not None:
            self.text = self.text[:keep]
            return False
        self.emit(len(self.text) - self.guard.hold_back)
        return True

    def emit(self, end: int) -> None:
        """Hand `on_token` the text up to `end` that it has not had yet."""
        if self.on_token is not None and end > self.emitted:
            self.on_token(self.text[self.emitted : end])
            self.emitted = end

    def finish(self) -> str:
        """Hand `on_token` the rest; returns the whole answer."""
        self.emit(len(self.text))
        return self.text


def _word_end(text: str, cut: int, reach: int = 16) -> int:
    """`cut`, moved to the end of the word it falls inside (within `reach` characters)."""
    if 0 < cut < len(text) and text[cut - 1].isalnum() and text[cut].isalnum():
        for index in range(cut, min(len(text), cut + reach)):
            if not text[index].isalnum():
                return index
    return cut


def trim_repetition(text: str, window: int | None = DEFAULT_WINDOW) -> tuple[str, bool]:
    """Cut a finished `text` where it first repeats itself; returns (text, whether it was cut).

    For text that arrived whole (a server's answer that was not streamed): the guard's rule,
    applied as if the text had grown one character at a time.
    """
    keep = RepetitionGuard(window).check(text)
    return (text, False) if keep is None else (text[:keep], True)
