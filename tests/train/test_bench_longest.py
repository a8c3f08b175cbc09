"""bench/train_throughput.py's longest-sequence search (halve, then bisect) and its table, on CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "train_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_throughput_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("limit", [8192, 50_000, 99_999, 131072, 200_000])
def test_search_finds_the_longest_granule_multiple_that_fits(bench, limit):
    longest, tries = bench.search_longest(lambda n: n <= limit, 131072, 4096)
    expected = min(131072, limit // 4096 * 4096)
    assert longest == expected
    assert all((n <= limit) == ok for n, ok in tries)
    assert len(tries) == len({n for n, _ in tries})  # no length tried twice
    assert len(tries) <= 2 + 5 + 1  # halvings down to the limit, then ~log2(range / granule)


def test_search_halves_first_then_bisects(bench):
    _, tries = bench.search_longest(lambda n: n <= 70_000, 131072, 8192)
    assert [n for n, _ in tries[:2]] == [131072, 65536]
    assert [n for n, _ in tries[2:]] == [98304, 81920, 73728]


def test_search_reports_none_when_nothing_fits(bench):
    longest, tries = bench.search_longest(lambda n: False, 65536, 8192)
    assert longest is None and [n for n, _ in tries] == [65536, 32768, 16384, 8192]


def test_longest_table_puts_infuse_beside_unsloth(bench):
    rows = [{"shape": "8b", "quant": "bf16", "backend": "infuse", "longest": 98304, "capped": False,
             "peak_gib": 39.1, "step_s": 20.5, "tries": [(131072, False), (65536, True), (98304, True)]},
            {"shape": "8b", "quant": "bf16", "backend": "unsloth", "longest": 65536, "capped": False,
             "peak_gib": 35.0, "step_s": 12.0, "tries": [(131072, False), (65536, True)]},
            {"shape": "8b", "quant": "nf4", "backend": "infuse", "longest": 131072, "capped": True,
             "peak_gib": 30.0, "step_s": 40.0, "tries": [(131072, True)]}]
    text = bench.longest_table(rows, SimpleNamespace(cap_gib=40.0))
    lines = text.splitlines()
    assert "within 40 GiB" in lines[0]
    assert "| 8b | bf16 | infuse | 98,304 | 1.50x | 39.10 GiB | 20.5 s | 131,072 no, 65,536 fit, 98,304 fit |" in lines
    assert "| 8b | nf4 | infuse | >= 131,072 | - |" in text


def test_search_bisects_from_a_known_fit_instead_of_halving(bench):
    longest, tries = bench.search_longest(lambda n: n <= 110_000, 131072, 8192, known_fit=98304)
    assert longest == 106496
    assert [n for n, _ in tries] == [131072, 114688, 106496]  # 98,304 is not tried again
