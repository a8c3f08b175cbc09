"""Ask one shared method several questions at the same instant, from one thread each.

Imported by tests as `from at_once import answer_at_once` (like tiny_models: a unique name).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def answer_at_once(answer: Callable[[str], Any], questions: Sequence[str]) -> dict[str, Any]:
    """Start one thread per question, release them together, return {question: result}.

    Raises the first error a thread met (so a race shows as a failure, not a missing key).
    """
    barrier = threading.Barrier(len(questions))
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def ask(question: str) -> None:
        barrier.wait()
        try:
            results[question] = answer(question)
        except BaseException as error:  # noqa: BLE001 - raised in the caller's thread below
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(question,)) for question in questions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]
    return results
