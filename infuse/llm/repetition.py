"""Stop an answer that starts repeating itself, and keep the part before the repeat.

Small models (the packaged 135M one above all) fall into loops: a sentence said again and again,
or a fragment like "anvil_anvil_anvil" until the token limit, which costs minutes on a CPU. The
guard watches the answer's text as it grows: when its last `window` characters already appeared
earlier in the answer, the answer is repeating, and it is cut where the repeat began, so one copy
of the repeated part is kept.

It works on text, not token ids, so one rule serves every backend: the local token loop, llama.cpp
and a streamed OpenAI-compatible server. Sampling penalties (repeat/frequency penalty) change which
tokens are picked; this guard only decides when to stop, so greedy answers stay what they were up
to the repeat. A 48-character window is about 12 tokens: short enough to catch a repeated sentence
early, long enough that a name or path mentioned twice does not end an answer. Structured (JSON)
output turns the guard off: its keys and punctuation repeat by design.
"""

from __future__ import annotations

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
                return tail_start
        return None


def trim_repetition(text: str, window: int | None = DEFAULT_WINDOW) -> tuple[str, bool]:
    """Cut a finished `text` where it first repeats itself; returns (text, whether it was cut).

    For text that arrived whole (a server's answer that was not streamed): the guard's rule,
    applied as if the text had grown one character at a time.
    """
    keep = RepetitionGuard(window).check(text)
    return (text, False) if keep is None else (text[:keep], True)
