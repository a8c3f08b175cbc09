"""Every case of the bad-input corpus gets its verdict: a one-line error naming the culprit
(or a named warning), never a traceback or silence, and the user's data left intact."""

from __future__ import annotations

import pytest

from badinput.corpus import CASES, TRACEBACK, classify, passes


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case, tmp_path):
    outcome = classify(case, tmp_path)
    assert outcome.verdict != TRACEBACK, outcome.output
    assert passes(case, outcome), f"expected {case.expect} matching {case.match!r}, got " \
                                  f"{outcome.verdict} (exit {outcome.code}):\n{outcome.output}"
    if case.check is not None:
        case.check(tmp_path)
