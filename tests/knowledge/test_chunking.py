"""Chunking: structure kept, budget respected, overlap present, every chunk prefixed."""

from __future__ import annotations

import pytest

from infuse.errors import ConfigError
from infuse.knowledge.chunking import chunk_document, count_tokens, parse_blocks
from infuse.knowledge.documents import Document

LONG = " ".join(f"Sentence {i} explains refunds in detail." for i in range(40))
TEXT = f"""# Policies

Intro line.

## Refunds

{LONG}

- item one
- item two

| plan | price |
| basic | 10 |

## Shipping

Ships in 3 days.
"""


def test_parse_blocks_tracks_heading_paths_and_kinds():
    blocks = parse_blocks(TEXT)
    assert [(b.kind, b.heading_path) for b in blocks] == [
        ("paragraph", ("Policies",)),
        ("paragraph", ("Policies", "Refunds")),
        ("list", ("Policies", "Refunds")),
        ("table", ("Policies", "Refunds")),
        ("paragraph", ("Policies", "Shipping")),
    ]


def test_chunks_fit_budget_have_prefix_and_overlap():
    document = Document(text=TEXT, source="/docs/policies.md", title="Policies")
    chunks = chunk_document(document, max_tokens=60, overlap_tokens=12)
    assert all(count_tokens(chunk.text) <= 60 for chunk in chunks)
    refunds = [c for c in chunks if c.heading_path == ["Policies", "Refunds"]]
    assert len(refunds) >= 3
    assert all(c.text.startswith("Policies > Refunds\n\n") for c in refunds)
    # consecutive chunks of one section share their boundary sentence(s)
    first_tail = refunds[0].text.split(". ")[-1]
    assert first_tail in refunds[1].text
    # sections never share a chunk; the small table and list stay whole
    assert chunks[-1].text == "Policies > Shipping\n\nShips in 3 days."
    assert any("| plan | price |\n| basic | 10 |" in c.text for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert {c.chunk_count for c in chunks} == {len(chunks)}
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_large_table_split_repeats_header():
    rows = "\n".join(f"| product {i} | costs {i} dollars |" for i in range(60))
    document = Document(text=f"| product | price |\n{rows}", source="t.md", title="")
    chunks = chunk_document(document, max_tokens=50, overlap_tokens=0)
    assert len(chunks) > 2
    assert all(c.text.startswith("| product | price |") for c in chunks)


def test_custom_token_counter_and_bad_budget():
    document = Document(text="one two three four five six", source="x.txt")
    chunks = chunk_document(
        document, max_tokens=16, overlap_tokens=0, token_counter=lambda t: 10 * len(t.split())
    )
    assert len(chunks) >= 3
    with pytest.raises(ConfigError, match="--chunk-tokens"):
        chunk_document(document, max_tokens=100, overlap_tokens=60)


def test_hash_changes_with_content_only():
    a = Document(text="same", source="a.md", title="T")
    assert a.content_hash == Document(text="same", source="elsewhere.md", title="T").content_hash
    assert a.content_hash != Document(text="same!", source="a.md", title="T").content_hash
