"""Checking a written report's citations against the sources actually read.

    check_citations(report, sources) -> CitationCheck

A `[n]` whose n is not a source read is removed (and counted); a sentence whose cited sources
hold under `MIN_SUPPORT` of its content words is flagged (listed, and marked in the report).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from infuse.knowledge.words import FUNCTION_WORDS

_CITE = re.compile(r"\s?\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP = FUNCTION_WORDS | frozenset(
    "here has have had also than then into about over more most such".split()
)
MIN_SUPPORT = 0.5


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


@dataclass
class CitationCheck:
    report: str
    cited: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_citations(report: str, sources: dict[int, str]) -> CitationCheck:
    """`sources` maps each number read to its text. Returns the report with unknown citations
    removed, the numbers kept/dropped, and the sentences their sources do not support."""
    check = CitationCheck(report="")

    def keep(match: re.Match) -> str:
        numbers = [int(part) for part in match.group(1).split(",")]
        good = [n for n in numbers if n in sources]
        check.dropped.extend(n for n in numbers if n not in sources)
        for n in good:
            if n not in check.cited:
                check.cited.append(n)
        return (" " if match.group(0).startswith(" ") else "") + "".join(
            f"[{n}]" for n in good
        ) if good else ""

    cleaned = _CITE.sub(keep, report)
    for sentence in _SENTENCE.split(cleaned):
        numbers = [int(p) for m in _CITE.finditer(sentence) for p in m.group(1).split(",")]
        if not numbers:
            continue
        words = content_words(_CITE.sub("", sentence).lstrip("#-* "))
        if not words:
            continue
        support = set().union(*(content_words(sources[n]) for n in numbers))
        share = len(words & support) / len(words)
        if share < MIN_SUPPORT:
            check.flagged.append(
                {"sentence": sentence.strip(), "citations": numbers, "support": round(share, 2)}
            )
    check.report = cleaned
    return check
