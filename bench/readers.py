"""PDF text: infuse's reader (PDFium + repairs) beside pypdf's `extract_text` (what infuse used
before, plain and `extraction_mode="layout"`), in one run on the same files.

For each PDF: seconds to read it all, and run-together words per 1,000 words (tokens of 20+
letters, e.g. "Youshouldreadthefine": PDF layouts that place words without space characters)
and words still split by a line-end hyphen ("distri-" + "bution").

    PYTHONPATH=$PWD python bench/readers.py FILE.pdf ...   # e.g. PDFs from Debian -doc packages
    PYTHONPATH=$PWD python bench/readers.py                # a generated PDF, to check the script
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from infuse.knowledge import read_file
from infuse.knowledge.cleaning import clean_text

_WORD = re.compile(r"[A-Za-z]+")
_FUSED = re.compile(r"[A-Za-z]{20,}")
_SPLIT = re.compile(r"[a-z]-\n[a-z]")


def pypdf_text(path: Path, mode: str) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if mode == "layout":
        return "\n".join(page.extract_text(extraction_mode="layout") or "" for page in reader.pages)
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def measure(name: str, read) -> tuple[str, float, float, int, int]:
    started = time.perf_counter()
    text = read()
    seconds = time.perf_counter() - started
    words = max(1, len(_WORD.findall(text)))
    return name, seconds, 1000 * len(_FUSED.findall(text)) / words, len(_SPLIT.findall(text)), words


def sample_pdf(folder: Path) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen import canvas

    path = folder / "sample.pdf"
    pdf = canvas.Canvas(str(path))
    for page in range(20):
        y = 780
        for line in range(40):
            x = 72.0
            for word in f"Line {line} of page {page} places every word by itself".split():
                pdf.drawString(x, y, word)
                x += pdfmetrics.stringWidth(word, "Helvetica", 12) + 2.5
            y -= 18
        pdf.showPage()
    pdf.save()
    return path


def main() -> None:
    paths = [Path(arg) for arg in sys.argv[1:]]
    folder = tempfile.TemporaryDirectory()
    if not paths:
        paths = [sample_pdf(Path(folder.name))]
    print(f"python {platform.python_version()}, pypdfium2 {version('pypdfium2')}, "
          f"pypdf {version('pypdf')}, {platform.machine()}, {os.cpu_count()} cores")
    print(f"{'file':<34} {'reader':<22} {'seconds':>8} {'fused/1k words':>15} {'split words':>12}")
    for path in paths:
        rows = [
            measure("infuse (PDFium)", lambda path=path: read_file(path)[0].text),
            measure("pypdf", lambda path=path: clean_text(pypdf_text(path, "plain"))),
            measure("pypdf layout", lambda path=path: clean_text(pypdf_text(path, "layout"))),
        ]
        for name, seconds, fused, split, _words in rows:
            print(f"{path.name[:34]:<34} {name:<22} {seconds:>8.2f} {fused:>15.1f} {split:>12d}")
    folder.cleanup()


if __name__ == "__main__":
    main()
