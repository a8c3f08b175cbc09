"""The one road from files to text: a folder of real-world document kinds, read whole and right."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from infuse.errors import DataError
from infuse.knowledge import ReadResult, find_files, read_file, read_paths

ROFF = r""".\" a comment the reader must drop
.TH MYTOOL 1 "2024-05-01" "mytool 1.0"
.SH NAME
mytool \- frobnicate the widgets
.SH OPTIONS
.TP
.BR \-\-timeout " " \fIseconds\fR
Wait at most
\fIseconds\fR for the widget server.
.TP
.B \-v
Talk more.
.SH EXAMPLES
.nf
mytool \-\-timeout 30
.fi
"""

RST = """Widget guide
============

Installing
----------

Run the installer with the ``--prefix`` option; the default prefix is /opt/widgets.
"""

HTML = """<!doctype html><html><head><title>Widget settings</title><script>var x = 1;</script>
</head><body><nav>Home | Docs</nav>
<div class="page"><div>The widget server listens on port 8731.</div>
<div><span>Backups run at 02:00 every night.</span> <span>They are kept 9 days.</span></div></div>
<h2>Options</h2>
<dl><dt><code>--timeout &lt;seconds&gt;</code></dt><dd><p>How long to wait for the server.</p></dd>
<dt>revert.reference</dt><dd>Add a reference to the reverted commit.</dd></dl>
<table><tr><th>plan</th><th>price</th></tr><tr><td>basic</td><td>EUR 12</td></tr></table>
<footer>Copyright 2026</footer></body></html>"""

DIVS_ONLY = (
    "<html><body><div><div>Only divs here: the gateway is called Orinoco.</div></div></body></html>"
)


def make_pdf(path: Path) -> None:
    """A real PDF: a ligature glyph (ﬁ, ﬂ) in an embedded font, words hyphenated across line
    ends, a Unicode minus, and a line whose words are placed one by one without space characters
    (as TeX does)."""
    import reportlab
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    font = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"
    pdfmetrics.registerFont(TTFont("Vera", str(font)))
    pdf = canvas.Canvas(str(path))
    pdf.setTitle("Rocket manual")
    pdf.setFont("Vera", 12)
    pdf.drawString(72, 760, "The \ufb01rst \ufb02ight of the rocket was a great distri-")
    pdf.drawString(72, 744, "bution success; set revert.refer-")
    pdf.drawString(72, 728, "ence to true. Values go from \u22125 to 5.")
    x = 72.0
    for word in ["Given", "one", "value,", "the", "tool", "prints", "two."]:
        pdf.drawString(x, 690, word)
        x += pdfmetrics.stringWidth(word, "Vera", 12) + 3.3
    pdf.showPage()
    pdf.save()


def make_image_only_pdf(path: Path) -> None:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    pdf.rect(100, 100, 300, 400, fill=1)  # a "scan": marks on the page, no text layer
    pdf.showPage()
    pdf.save()


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    (folder / "man").mkdir(parents=True)
    (folder / "README").write_text(
        "Widgets\n\nThe widget daemon is started by widgetd.\n", encoding="utf-8"
    )
    (folder / "CDB_README").write_text(
        "The constant database lives in /var/cdb.\n", encoding="utf-8"
    )
    (folder / "guide.rst").write_text(RST, encoding="utf-8")
    (folder / "man" / "mytool.1").write_text(ROFF, encoding="utf-8")
    (folder / "man" / "other.8.gz").write_bytes(
        gzip.compress(ROFF.replace("MYTOOL", "OTHER").encode())
    )
    (folder / "settings.html").write_text(HTML, encoding="utf-8")
    (folder / "divs.html").write_text(DIVS_ONLY, encoding="utf-8")
    (folder / "term.txt").write_bytes(
        b"N\bNA\bAM\bME\bE\n       m\bmy\byt\bto\boo\bol\bl - _\bw_\bi_\bd_\bg_\be_\bt_\bs\n"
    )
    make_pdf(folder / "manual.pdf")
    (folder / "notes.md").write_bytes(b"")  # empty
    (folder / "blob.txt").write_bytes(
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    )  # binary
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / ".hidden.md").write_text("never read", encoding="utf-8")
    return folder


def by_name(result: ReadResult) -> dict[str, str]:
    return {Path(document.source).name: document.text for document in result.documents}


def test_a_folder_of_real_world_document_kinds_is_read_whole(docs):
    result = read_paths([docs])
    texts = by_name(result)
    assert sorted(texts) == [
        "CDB_README",
        "README",
        "divs.html",
        "guide.rst",
        "manual.pdf",
        "mytool.1",
        "other.8.gz",
        "settings.html",
        "term.txt",
    ]
    # extensionless text files, recognised by content
    assert "started by widgetd" in texts["README"] and "/var/cdb" in texts["CDB_README"]
    # reStructuredText titles become headings
    assert "# Widget guide" in texts["guide.rst"] and "## Installing" in texts["guide.rst"]
    # roff: the option term, its definition joined into a sentence, the code block
    man = texts["mytool.1"]
    assert "# MYTOOL(1)" in man and "## OPTIONS" in man
    assert "--timeout seconds\nWait at most seconds for the widget server." in man
    assert "mytool --timeout 30" in man and "a comment" not in man
    assert "OTHER(1)" in texts["other.8.gz"]
    # HTML: div and span text, <dl> terms with their definitions, table cells, no boilerplate
    page = texts["settings.html"]
    assert "The widget server listens on port 8731." in page
    assert "Backups run at 02:00 every night. They are kept 9 days." in page
    assert "--timeout <seconds>\n: How long to wait for the server." in page
    assert "revert.reference\n: Add a reference to the reverted commit." in page
    assert "| basic | EUR 12 |" in page
    assert page.count("port 8731") == 1  # nested divs: each text once
    assert "var x" not in page and "Copyright" not in page and "Home | Docs" not in page
    assert "gateway is called Orinoco" in texts["divs.html"]
    # terminal bold and underline
    assert texts["term.txt"] == "NAME\nmytool - widgets"
    # PDF: ligatures, words hyphenated at line ends, minus, words placed without spaces
    pdf = texts["manual.pdf"]
    assert "The first flight of the rocket" in pdf
    assert "distribution success" in pdf and "revert.reference to true" in pdf
    assert "from -5 to 5" in pdf
    assert "Given one value, the tool prints two." in pdf
    # what was not read is named with its reason
    reasons = {Path(item["path"]).name: item["reason"] for item in result.skipped}
    assert set(reasons) == {"notes.md", "blob.txt", "picture.png"}
    assert "empty file" in reasons["notes.md"]
    assert "binary file" in reasons["blob.txt"]
    assert "not a document type (.png)" in reasons["picture.png"]
    assert json.loads(json.dumps(result.to_dict()))["skipped"] == result.skipped


def test_titles_come_from_the_documents(docs):
    titles = {Path(d.source).name: d.title for d in read_paths([docs]).documents}
    assert titles["settings.html"] == "Widget settings"
    assert titles["manual.pdf"] == "Rocket manual"
    assert titles["mytool.1"] == "MYTOOL(1)"
    assert titles["guide.rst"] == "Widget guide"
    assert titles["README"] == "README"


def test_a_pdf_without_a_text_layer_is_skipped_with_the_reason(tmp_path):
    scan = tmp_path / "scan.pdf"
    make_image_only_pdf(scan)
    with pytest.raises(DataError, match=r"scan.pdf: no text layer .*OCR"):
        read_file(scan)
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(b"%PDF-1.4\nnot really a pdf")
    result = read_paths([scan, damaged])
    assert [Path(item["path"]).name for item in result.skipped] == ["scan.pdf", "damaged.pdf"]
    assert "not a readable PDF" in result.skipped[1]["reason"]


def test_symlinked_folder_and_real_folder_are_one(docs, tmp_path):
    link = tmp_path / "link-to-docs"
    link.symlink_to(docs, target_is_directory=True)
    (docs / "loop").symlink_to(docs, target_is_directory=True)  # a cycle must not hang
    files, _ = find_files([docs, link, link / "README"])
    assert len(files) == len(set(files)) == len(find_files([docs])[0])
    assert all(str(path).startswith(str(docs.resolve())) for path in files)


def test_a_file_name_that_is_not_utf8_is_named_not_a_traceback(docs):
    odd = os.path.join(os.fsencode(docs), b"caf\xe9.txt")
    with open(odd, "wb") as handle:
        handle.write(b"menu of the day")
    result = read_paths([docs])
    [item] = [item for item in result.skipped if "caf" in item["path"]]
    assert "not valid UTF-8" in item["reason"] and "rename" in item["reason"]
    assert "caf\ufffd.txt" in item["reason"]  # printable
    json.dumps(result.to_dict()).encode("utf-8")  # storable and printable
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_file(Path(os.fsdecode(odd)))


def test_globs_missing_paths_and_named_files_of_any_suffix(docs, tmp_path):
    script = docs / "setup.asy"
    script.write_text("size(100); // draws a widget", encoding="utf-8")
    result = read_paths([docs / "*.rst", tmp_path / "nothing-here", script])
    assert [Path(document.source).name for document in result.documents] == [
        "guide.rst",
        "setup.asy",
    ]
    assert result.skipped[0]["reason"].endswith("no such file, folder or matching files.")
    seen = []
    read_paths(
        [docs / "README", docs / "guide.rst"],
        on_progress=lambda done, total, **info: seen.append((done, total, Path(info["path"]).name)),
    )
    assert seen == [(1, 2, "README"), (2, 2, "guide.rst")]


def test_eval_knowledge_and_kb_add_index_the_same_documents(docs, tmp_path, tiny_embedder):
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.methods.build import knowledge_files

    eval_files = knowledge_files([docs])  # what `infuse eval --knowledge DIR` reads
    with KnowledgeBase(tmp_path / "kb", embedder=tiny_embedder, create=True) as kb:
        report = kb.add([docs])
        indexed = sorted({record.source for record in kb.documents()})
        assert sorted(map(str, eval_files)) == sorted(
            indexed
            + [
                item["path"]
                for item in report.skipped
                if "empty" in item["reason"] or "binary" in item["reason"]
            ]
        )
        assert any(source.endswith("manual.pdf") for source in indexed)
        # the same folder through a symbolic link is the same documents, not a second copy
        link = tmp_path / "link"
        link.symlink_to(docs, target_is_directory=True)
        again = kb.add([link])
        assert again.added == [] and len(again.unchanged) == len(indexed)


def test_encrypted_and_partly_scanned_pdfs_are_named(tmp_path):
    from reportlab.pdfgen import canvas

    locked = tmp_path / "locked.pdf"
    pdf = canvas.Canvas(str(locked), encrypt="secret")
    pdf.drawString(72, 760, "Classified.")
    pdf.showPage()
    pdf.save()
    partly = tmp_path / "partly.pdf"
    pdf = canvas.Canvas(str(partly))
    pdf.drawString(72, 760, "Page one has words.")
    pdf.showPage()
    pdf.rect(100, 100, 300, 400, fill=1)  # page two: a scan
    pdf.showPage()
    pdf.save()
    result = read_paths([locked, partly])
    assert "encrypted PDF" in result.skipped[0]["reason"]
    assert [Path(d.source).name for d in result.documents] == ["partly.pdf"]
    [warning] = result.warnings
    assert "1 of 2 pages have no text layer (pages 2; scanned?)" in warning["warning"]


def test_code_keeps_its_indentation(tmp_path):
    page = tmp_path / "code.html"
    page.write_text("<html><body><p>Example:</p><pre>def f():\n    return 1\n</pre></body></html>")
    [document] = read_file(page)
    assert "```\ndef f():\n    return 1\n```" in document.text


def test_pdfs_read_from_several_threads_at_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "manual.pdf"
    make_pdf(path)
    expected = read_file(path)[0].text
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: read_file(path)[0].text, range(16)))
    assert texts == [expected] * 16
