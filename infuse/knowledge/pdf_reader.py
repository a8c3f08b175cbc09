"""PDF -> text with PDFium (pypdfium2), then repaired: hyphenation, headers/footers, symbols.

PDFium places word gaps from the glyph positions, as a viewer's copy-paste does; pypdf (used
before) ran words together on DocBook-made manuals ("Youshouldreadthefineofficial...": 103
such tokens per 1,000 words of the Debian Reference PDF, 0.2 with PDFium; its layout mode is
worse) and was 5-12x slower (bench/readers.py, bench/results/readers.md). Ligatures
(`ﬁ`) and Unicode minus and quotes are normalised by `clean_text`; PDFium marks a hyphen that
breaks a word at a line end with U+0002, which is joined here.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from infuse.errors import DataError
from infuse.knowledge.cleaning import clean_text, remove_repeated_lines

# PDFium's "soft hyphen at a line end" marker, with the line break it may keep.
_LINE_END_HYPHEN = re.compile(r"(\w?)\x02[ \t]*(?:\r?\n[ \t]*)?(\w?)")

_DOT_LEADER = re.compile(r"(?:[ \t]*\.){5,}[ \t]*")


def _join_hyphen(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    if before.islower() and after.islower():
        return before + after  # "distri-bution" -> "distribution"
    return f"{before}-{after}"  # "GNU-PLOT", "1-Jan": the hyphen is part of the name


def repair_pdf_text(text: str) -> str:
    """Undo PDF extraction artifacts in one page's text (before `clean_text`): words
    hyphenated at line ends, table-of-contents dot leaders."""
    text = _LINE_END_HYPHEN.sub(_join_hyphen, text)
    text = _DOT_LEADER.sub(" ... ", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x02", "-")


_PDFIUM_LOCK = threading.Lock()  # PDFium is not thread-safe: one document at a time


def read_pdf(path: Path, data: bytes, warnings: list[dict] | None = None) -> tuple[str, str]:
    """PDF bytes -> (title, text). Raises DataError for damaged, encrypted or image-only PDFs;
    appends a warning when some pages (but not all) have no text layer. Safe to call from
    several threads (PDFium itself is not; calls are serialised)."""
    with _PDFIUM_LOCK:
        title, pages = _extract_pages(path, data)
    empty = [number for number, text in enumerate(pages, start=1) if not text.strip()]
    if pages and len(empty) == len(pages):
        raise DataError(
            f"{path}: no text layer (a scanned or image-only PDF); run OCR first "
            "(e.g. `ocrmypdf in.pdf out.pdf`); skipped."
        )
    if not pages:
        raise DataError(f"{path}: a PDF with no pages; skipped.")
    if empty and warnings is not None and len(empty) * 4 >= len(pages):
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        warnings.append(
            {
                "path": str(path),
                "warning": f"{path}: {len(empty)} of {len(pages)} pages have no text layer "
                f"(pages {shown}; scanned?): their words are missing; OCR them to include them.",
            }
        )
    pages = remove_repeated_lines([clean_text(page) for page in pages])
    return title, clean_text("\n\n".join(pages))


def _extract_pages(path: Path, data: bytes) -> tuple[str, list[str]]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        reason = str(error)
        if "password" in reason.lower():
            raise DataError(f"{path}: encrypted PDF (a password is needed); skipped.") from error
        raise DataError(f"{path}: not a readable PDF ({reason}); skipped.") from error
    try:
        pages = []
        for index in range(len(document)):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    pages.append(repair_pdf_text(textpage.get_text_bounded()))
                finally:
                    textpage.close()
            finally:
                page.close()
        title = str(document.get_metadata_dict().get("Title") or "").strip()
    except pdfium.PdfiumError as error:
        raise DataError(f"{path}: not a readable PDF ({error}); skipped.") from error
    finally:
        document.close()
    return title, pages
