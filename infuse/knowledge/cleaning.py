"""Text cleaning: encodings, Unicode, whitespace and boilerplate, before chunking."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_HYPHEN_BREAK = re.compile(r"(\w)-\n[ \t]*(\w)")
# Symbols that look alike but would not match what a user types: minus, hyphens, curly quotes.
_SYMBOLS = str.maketrans(
    {
        "\u2212": "-",
        "\u2010": "-",
        "\u2011": "-",
        "\ufe63": "-",
        "\uff0d": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ad": None,
    }
)
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(r"^\s*(page\s+)?\d+(\s*(of|/)\s*\d+)?\s*$", re.IGNORECASE)
_WORD = re.compile(r"\S*[ÃÂâ]\S*")
_MOJIBAKE_MARKERS = ("Ã©", "Ã¨", "Ã¶", "Ã¼", "â€™", "â€œ", "â€", "Ã ")


def decode_bytes(data: bytes) -> str:
    """Decode file bytes: BOMs first, then UTF-8, then Windows-1252 (never fails)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def looks_binary(data: bytes) -> bool:
    """True when bytes are not text: NUL bytes (outside UTF-16) or mostly non-printable."""
    sample = data[:8192]
    if not sample:
        return False
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: text if it decodes to text
        body = sample[: len(sample) - len(sample) % 2] if len(data) > len(sample) else sample
        try:
            text = body.decode("utf-16")
        except UnicodeDecodeError:
            return True
        shown = sum(char.isprintable() or char in "\t\n\r\f" for char in text)
        return bool(text) and shown / len(text) < 0.85
    if b"\x00" in sample:
        return True
    # backspace (terminal bold/underline) and escape (colour codes) occur in text manuals
    printable = sum(byte >= 32 or byte in (8, 9, 10, 12, 13, 27) for byte in sample)
    if printable / len(sample) < 0.85:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(sample) - 4:  # not just a character cut at the sample's end
            high = sum(byte >= 0x80 for byte in sample)
            return high / len(sample) > 0.3  # legacy 8-bit text has a few accents, not a third
    return False


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as Windows-1252 (`cafÃ©` -> `café`), word by word."""
    if not any(marker in text for marker in _MOJIBAKE_MARKERS):
        return text

    def repair(match: re.Match[str]) -> str:
        word = match.group(0)
        try:
            return word.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return word

    return _WORD.sub(repair, text)


def clean_text(text: str) -> str:
    """Normalise Unicode (NFKC: ligatures `ﬁ` -> `fi`), minus signs and curly quotes to ASCII,
    drop control characters, join words hyphenated across a line end, tidy whitespace (code
    inside ``` fences keeps its indentation)."""
    text = fix_mojibake(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFKC", text).translate(_SYMBOLS)
    text = _CONTROL.sub("", text)
    text = _HYPHEN_BREAK.sub(_join_hyphenated, text)
    lines = []
    in_code = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            lines.append(line.strip())
        elif in_code:
            lines.append(line.rstrip())  # indentation is meaning in code
        else:
            lines.append(_SPACES.sub(" ", line).strip())
    text = "\n".join(lines)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def _join_hyphenated(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    if before.islower() and after.islower():
        return before + after  # "exam-\nple" -> "example"
    return f"{before}-{after}"  # "1-\nJan", "X-\nRay": the hyphen belongs to the name


def remove_repeated_lines(pages: list[str], min_pages: int = 3) -> list[str]:
    """Drop page headers/footers: short lines found on most pages, the same lines with a
    changing page number at the top or bottom of pages ("Manual 23 / 233"), and bare page
    numbers."""
    if len(pages) < min_pages:
        return [
            "\n".join(line for line in page.split("\n") if not _PAGE_NUMBER.match(line))
            for page in pages
        ]
    counts: Counter[str] = Counter()
    edge_counts: Counter[str] = Counter()
    for page in pages:
        lines = [line.strip() for line in page.split("\n") if line.strip()]
        counts.update(set(lines))
        edge_counts.update({_DIGITS.sub("#", line) for line in lines[:1] + lines[-1:]})
    threshold = max(min_pages, int(0.6 * len(pages)))
    boilerplate = {line for line, seen in counts.items() if seen >= threshold and len(line) < 120}
    edges = {line for line, seen in edge_counts.items() if seen >= threshold and len(line) < 120}
    cleaned = []
    for page in pages:
        lines = page.split("\n")
        filled = [index for index, line in enumerate(lines) if line.strip()]
        edge_indexes = set(filled[:1] + filled[-1:])
        kept = [
            line
            for index, line in enumerate(lines)
            if line.strip() not in boilerplate
            and not _PAGE_NUMBER.match(line)
            and not (index in edge_indexes and _DIGITS.sub("#", line.strip()) in edges)
        ]
        cleaned.append("\n".join(kept))
    return cleaned
