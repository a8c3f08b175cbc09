"""Property tests: no input makes a reader raise anything but DataError (never a traceback)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infuse.errors import DataError
from infuse.files import parse_jsonl
from infuse.knowledge import read_file
from infuse.knowledge.html_reader import html_to_text
from infuse.knowledge.plaintext import clean_overstrike, roff_to_text

TAGS = [
    "div",
    "span",
    "p",
    "dl",
    "dt",
    "dd",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "td",
    "th",
    "pre",
    "code",
    "h1",
    "h3",
    "br",
    "script",
    "style",
    "main",
    "nav",
    "b",
    "x-widget",
]
WORDS = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def html_trees(draw, depth=0):
    """Random, often malformed, nested HTML with real tag names and odd text."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 3 if depth < 6 else 0))
        if kind == 0:
            parts.append(draw(WORDS).replace("<", " "))
        else:
            tag = draw(st.sampled_from(TAGS))
            inner = draw(html_trees(depth + 1))
            close = draw(st.booleans())  # unclosed tags are common in the wild
            attrs = draw(st.sampled_from(["", " hidden", ' style="display:none"', ' class="a"']))
            parts.append(f"<{tag}{attrs}>{inner}" + (f"</{tag}>" if close else ""))
    return "".join(parts)


WORDS_IN_TREE = st.lists(st.from_regex(r"[A-Za-z]{4,10}", fullmatch=True), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(html_trees())
def test_html_reader_never_fails(markup):
    title, text = html_to_text(markup)
    assert isinstance(title, str) and isinstance(text, str)


@settings(max_examples=100, deadline=None)
@given(
    WORDS_IN_TREE,
    st.lists(
        st.sampled_from(["div", "span", "section", "p", "li", "dd", "td", "em"]),
        min_size=1,
        max_size=8,
    ),
)
def test_html_reader_keeps_every_visible_word_once(words, tags):
    """Words nested in any mix of elements come out, each exactly once."""
    markup = "".join(f"<{tag}>" for tag in tags)
    markup += " ".join(f"<span>{word}</span>" for word in words)
    markup += "".join(f"</{tag}>" for tag in reversed(tags))
    _, text = html_to_text(f"<html><body>{markup}</body></html>")
    assert sorted(token for token in text.split() if token in set(words)) == sorted(words)


def test_deeply_nested_html_does_not_overflow():
    markup = "<div>" * 5000 + "deep fact" + "</div>" * 5000
    assert "deep fact" in html_to_text(markup)[1]


SUFFIXES = [
    "",
    ".txt",
    ".md",
    ".html",
    ".pdf",
    ".docx",
    ".csv",
    ".jsonl",
    ".json",
    ".rst",
    ".1",
    ".gz",
    ".1.gz",
    ".org",
    ".adoc",
]
PREFIXES = [
    b"",
    b"%PDF-1.4\n",
    b"\x1f\x8b\x08\x00",
    b"PK\x03\x04",
    b"<!doctype html><html>",
    b".TH X 1\n",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b'{"text": ',
    b"a,b\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SUFFIXES), st.sampled_from(PREFIXES), st.binary(max_size=600))
def test_read_file_on_random_bytes_raises_only_data_error(suffix, prefix, payload):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random{suffix}"
        path.write_bytes(prefix + payload)
        try:
            documents = read_file(path)
        except DataError as error:
            assert str(path) in str(error) or path.name in str(error)
        else:
            assert all(isinstance(document.text, str) for document in documents)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_roff_and_overstrike_never_fail(text):
    title, body = roff_to_text(text)
    assert isinstance(body, str)
    assert "\x08" not in clean_overstrike(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_jsonl_parser_raises_only_data_error_naming_the_line(text):
    try:
        rows = parse_jsonl(text, "data.jsonl")
    except DataError as error:
        assert str(error).startswith("data.jsonl, line ")
        assert "fix or remove that line" in str(error)
    else:
        assert all(isinstance(row, dict) for _, row in rows)
