"""CAG reads knowledge through the one reader: folders, PDFs and HTML, and names a bad file."""

from __future__ import annotations

import pytest

from infuse.cag.knowledge import knowledge_files, read_knowledge_files
from infuse.errors import DataError


def test_a_folder_of_pdf_html_and_text_becomes_named_knowledge(tmp_path):
    from reportlab.pdfgen import canvas

    folder = tmp_path / "docs"
    folder.mkdir()
    pdf = canvas.Canvas(str(folder / "manual.pdf"))
    pdf.drawString(72, 760, "The launch window opens at 06:40.")
    pdf.showPage()
    pdf.save()
    (folder / "page.html").write_text("<html><body><div>The pad is number 39A.</div></body></html>")
    (folder / "notes.txt").write_text("Fuel is loaded 3 hours before launch.")
    (folder / "empty.md").write_text("")
    files = knowledge_files([folder])
    assert sorted(path.name for path in files) == ["empty.md", "manual.pdf", "notes.txt", "page.html"]
    documents = dict(read_knowledge_files([folder]))
    assert documents == {
        "manual.pdf": "The launch window opens at 06:40.",
        "notes.txt": "Fuel is loaded 3 hours before launch.",
        "page.html": "The pad is number 39A.",
    }
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02" * 50)
    with pytest.raises(DataError, match=r"blob.txt: binary file"):
        read_knowledge_files([folder])
    with pytest.raises(DataError, match="does not exist"):
        knowledge_files([tmp_path / "nope"])
