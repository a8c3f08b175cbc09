"""Structure-aware chunking: split a document by headings, keep paragraphs, lists and small
tables whole, pack them into chunks within a token budget with overlap, and prefix each chunk
with the document title and heading path (so a chunk read alone still says what it is about).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from infuse.errors import ConfigError
from infuse.knowledge.documents import Chunk, Document

_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)])\s+")


def count_tokens(text: str) -> int:
    """Approximate token count: words and punctuation marks (close to WordPiece for English)."""
    return len(_TOKEN.findall(text))


@dataclass
class Block:
    """A structural unit: paragraph, list, table or code, under a heading path."""

    kind: str
    text: str
    heading_path: tuple[str, ...]


def parse_blocks(text: str) -> list[Block]:
    """Split Markdown-like text into blocks, tracking the heading path of each."""
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    current: list[str] = []
    kind = "paragraph"
    in_code = False

    def flush() -> None:
        nonlocal current, kind
        body = "\n".join(current).strip()
        if body:
            blocks.append(Block(kind, body, tuple(title for _, title in headings)))
        current, kind = [], "paragraph"

    for line in text.split("\n"):
        if line.strip().startswith("```"):
            if in_code:
                current.append(line)
                flush()
                in_code = False
            else:
                flush()
                in_code, kind, current = True, "code", [line]
            continue
        if in_code:
            current.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = len(heading.group(1))
            headings = [(lvl, title) for lvl, title in headings if lvl < level]
            headings.append((level, heading.group(2).strip()))
            continue
        if not line.strip():
            flush()
            continue
        line_kind = (
            "table"
            if line.lstrip().startswith("|")
            else "list"
            if _LIST_ITEM.match(line)
            else "paragraph"
        )
        if current and line_kind != kind and not (kind == "list" and line_kind == "paragraph"):
            flush()
        kind = line_kind if not current or kind != "list" else kind
        current.append(line)
    flush()
    return blocks


def _split_block(
    block: Block, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[str, str]]:
    """Split an oversized block into (piece, separator) pairs that each fit: rows, items,
    sentences, then words; the separator joins a piece to the one before it."""
    if block.kind == "table":
        rows = block.text.split("\n")
        header, body = rows[0], rows[1:]
        pieces, current = [], [header]
        for row in body:
            if count_tokens("\n".join([*current, row])) > budget and len(current) > 1:
                pieces.append("\n".join(current))
                current = [header]
            current.append(row)
        pieces.append("\n".join(current))
    elif block.kind in ("list", "code"):
        pieces = block.text.split("\n")
    else:
        pieces = _SENTENCE_END.split(block.text)
    separator = " " if block.kind == "paragraph" else "\n"
    result: list[tuple[str, str]] = []
    for piece in pieces:
        if count_tokens(piece) <= budget:
            result.append((piece, separator))
            continue
        words = piece.split(" ")
        current: list[str] = []
        for word in words:
            if current and count_tokens(" ".join([*current, word])) > budget:
                result.append((" ".join(current), " "))
                current = []
            current.append(word)
        if current:
            result.append((" ".join(current), " "))
    if result:
        result[0] = (result[0][0], "\n\n")
    return result


def _join(units: list[tuple[str, str]]) -> str:
    return "".join(
        (separator if index else "") + text for index, (text, separator) in enumerate(units)
    )


def _pack(
    units: list[tuple[str, str]], budget: int, overlap: int, count_tokens: Callable[[str], int]
) -> list[str]:
    """Greedily pack units into texts of at most `budget` tokens; repeat up to `overlap` tokens."""
    texts: list[str] = []
    current: list[tuple[str, str]] = []
    tokens = 0
    fresh = 0  # units in `current` that no earlier chunk has
    for unit in units:
        size = count_tokens(unit[0])
        if current and tokens + size > budget:
            texts.append(_join(current))
            tail: list[tuple[str, str]] = []
            tail_tokens = 0
            for previous in reversed(current):
                cost = count_tokens(previous[0])
                if tail_tokens + cost > overlap or tail_tokens + cost + size > budget:
                    break
                tail.insert(0, previous)
                tail_tokens += cost
            current, tokens, fresh = tail, tail_tokens, 0
        current.append(unit)
        tokens += size
        fresh += 1
    if current and fresh:
        texts.append(_join(current))
    return texts


def heading_prefix(title: str, heading_path: tuple[str, ...] | list[str]) -> str:
    """`Title > Section > Subsection`, without repeating a heading equal to the title."""
    parts = [title] if title else []
    parts += [heading for heading in heading_path if heading and heading != title]
    return " > ".join(parts)


def chunk_document(
    document: Document,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    token_counter: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Cut a document into chunks of at most `max_tokens` (prefix included) with overlap.

    Sections (heading paths) never share a chunk; a paragraph, list or table that fits is
    kept whole. Raises ConfigError for an impossible budget.
    """
    if max_tokens < 16 or not 0 <= overlap_tokens < max_tokens // 2:
        raise ConfigError(
            f"Chunk size {max_tokens} / overlap {overlap_tokens}: need size >= 16 and "
            "0 <= overlap < size/2 (e.g. --chunk-tokens 200 --overlap-tokens 40)."
        )
    counter = token_counter or count_tokens
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    for block in parse_blocks(document.text):
        if sections and sections[-1][0] == block.heading_path:
            sections[-1][1].append(block)
        else:
            sections.append((block.heading_path, [block]))
    bodies: list[tuple[tuple[str, ...], str]] = []
    for path, blocks in sections:
        prefix = heading_prefix(document.title, path)
        budget = max(16, max_tokens - counter(prefix) - 2)
        units: list[tuple[str, str]] = []
        for block in blocks:
            fits = counter(block.text) <= budget
            units += [(block.text, "\n\n")] if fits else _split_block(block, budget, counter)
        bodies += [(path, body) for body in _pack(units, budget, overlap_tokens, counter)]
    doc_hash = document.content_hash
    chunks = []
    for position, (path, body) in enumerate(bodies):
        prefix = heading_prefix(document.title, path)
        chunks.append(
            Chunk(
                chunk_id=f"{document.doc_id}::{doc_hash[:12]}::{position}",
                doc_id=document.doc_id,
                source=document.source,
                text=f"{prefix}\n\n{body}" if prefix else body,
                position=position,
                chunk_count=len(bodies),
                doc_hash=doc_hash,
                title=document.title,
                heading_path=list(path),
                metadata=dict(document.metadata),
                reader_options=dict(document.reader_options),
            )
        )
    return chunks
