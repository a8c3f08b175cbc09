"""Readers: every supported file type, made here, comes out as clean structured text."""

from __future__ import annotations

import json

import pytest

from infuse.errors import DataError
from infuse.knowledge.cleaning import clean_text, decode_bytes, remove_repeated_lines
from infuse.knowledge.readers import RowOptions, read_file


def make_pdf(path, pages: list[list[str]], title: str = "Handbook") -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(title)
    for number, lines in enumerate(pages, start=1):
        pdf.drawString(72, 800, "ACME CONFIDENTIAL")
        for index, line in enumerate(lines):
            pdf.drawString(72, 760 - 16 * index, line)
        pdf.drawString(300, 40, str(number))
        pdf.showPage()
    pdf.save()


def make_docx(path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Onboarding"
    document.add_heading("Onboarding", level=0)
    document.add_heading("Laptops", level=1)
    document.add_paragraph("Every new hire gets a laptop on day one.")
    document.add_paragraph("Bring your ID", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "item", "owner"
    table.cell(1, 0).text, table.cell(1, 1).text = "badge", "security"
    document.save(str(path))


def test_markdown_front_matter_links_and_title(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(
        "---\ntitle: Refund guide\nteam: support\n---\n# Ignored heading\n\n"
        "See [the policy](http://x/y) ![logo](l.png).\n<!-- hidden -->\n",
        encoding="utf-8",
    )
    [document] = read_file(path)
    assert document.title == "Refund guide"
    assert document.metadata == {"team": "support"}
    assert "See the policy logo." in document.text
    assert "hidden" not in document.text and "http" not in document.text


def test_text_encodings_and_cleaning(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Caf\xe9 r\xe9sum\xe9\r\n\r\n\r\n\r\nsecond   para".encode("cp1252"))
    [document] = read_file(path)
    assert document.text == "Café résumé\n\nsecond para"
    assert decode_bytes("\ufeffhi".encode("utf-8")) == "hi"
    assert decode_bytes("hi".encode("utf-16")) == "hi"
    assert clean_text("cafÃ© ﬁne exam-\nple\x00") == "café fine example"


def test_html_drops_boilerplate_keeps_structure(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Prices</title><script>var x=1;</script></head><body>"
        "<nav>Home | About</nav><main><h1>Plans</h1><p>Three plans.</p>"
        "<h2>Basic</h2><ul><li>5 users</li><li>Email support</li></ul>"
        "<table><tr><th>plan</th><th>price</th></tr><tr><td>basic</td><td>$10</td></tr></table>"
        "</main><footer>Copyright 2026</footer></body></html>",
        encoding="utf-8",
    )
    [document] = read_file(path)
    assert document.title == "Prices"
    assert "# Plans" in document.text and "## Basic" in document.text
    assert "- 5 users" in document.text
    assert "| basic | $10 |" in document.text
    for junk in ("var x", "Home | About", "Copyright"):
        assert junk not in document.text


def test_html_drops_navigation_the_doc_generators_mark_without_nav(tmp_path):
    """DocBook (Debian's valgrind manual), Sphinx and ARIA navigation: not content."""
    path = tmp_path / "dh-manual.html"
    path.write_text(
        '<html><body><div class="navheader"><table class="nav" summary="Navigation header">'
        "<tr><td>Valgrind User Manual</td></tr></table></div>"
        '<div role="navigation">Docs &gt; Tools</div><div class="related">previous | next</div>'
        "<h1>10. DHAT</h1><p>DHAT examines how programs use their heap.</p>"
        '<table class="nav" summary="Navigation footer"><tr><td>&lt;&lt; 9. Massif: a heap profiler</td>'
        "<td>Up</td><td>11. Lackey &gt;&gt;</td></tr></table>"
        "<table><tr><td>option</td><td>--mode</td></tr></table></body></html>",
        encoding="utf-8",
    )
    [document] = read_file(path)
    assert "DHAT examines how programs use their heap." in document.text
    assert "| option | --mode |" in document.text  # a content table stays
    for junk in ("Valgrind User Manual", "Massif", "Up", "Docs > Tools", "previous"):
        assert junk not in document.text


def test_pdf_text_title_and_repeated_headers_removed(tmp_path):
    path = tmp_path / "handbook.pdf"
    make_pdf(
        path,
        [[f"Page {n} talks about topic{n}.", f"Refunds take {40 + n} days."] for n in range(1, 5)],
    )
    [document] = read_file(path)
    assert document.title == "Handbook"
    assert "topic3" in document.text and "Refunds take 44 days." in document.text
    assert "ACME CONFIDENTIAL" not in document.text  # header on every page


def test_remove_repeated_lines_drops_page_numbers():
    pages = remove_repeated_lines(["body one\n1", "body two\nPage 2 of 2"])
    assert pages == ["body one", "body two"]


def test_docx_headings_lists_tables(tmp_path):
    path = tmp_path / "onboarding.docx"
    make_docx(path)
    [document] = read_file(path)
    assert document.title == "Onboarding"
    assert "## Laptops" in document.text
    assert "- Bring your ID" in document.text
    assert "| badge | security |" in document.text


def test_csv_rows_with_chosen_columns(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text(
        "id,question,answer,team\nq1,How long is the refund window?,45 days,support\n"
        "q2,Do you ship abroad?,Yes,logistics\n",
        encoding="utf-8",
    )
    documents = read_file(
        path,
        RowOptions(text_columns=["question", "answer"], metadata_columns=["team"], id_column="id"),
    )
    assert [d.doc_id for d in documents] == [f"{path}#q1", f"{path}#q2"]
    assert documents[0].text == "question: How long is the refund window?\nanswer: 45 days"
    assert documents[1].metadata == {"team": "logistics"}
    assert documents[0].source == str(path)


def test_jsonl_and_json_rows(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text(
        json.dumps({"text": "Alpha note", "tags": ["a"]})
        + "\n\n"
        + json.dumps({"text": "Beta"})
        + "\n"
    )
    documents = read_file(path, RowOptions(text_columns=["text"]))
    assert [d.text for d in documents] == ["Alpha note", "Beta"]
    assert [d.doc_id.rsplit("#", 1)[1] for d in documents] == ["1", "3"]  # line numbers
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"body": "one"}, {"body": "two"}]))
    assert [d.text for d in read_file(listed)] == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("blob.txt", b"\x00\x01\x02\x03binary", "binary file"),
        ("broken.pdf", b"this is not a pdf", "not a readable PDF"),
        ("broken.docx", b"PK\x03\x04garbage", "not a readable DOCX"),
        ("bad.jsonl", b'{"text": "ok"}\n{oops\n', "line 2: invalid JSON"),
    ],
)
def test_bad_files_raise_data_error_naming_them(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_file(path, RowOptions(text_columns=["text"]) if name.endswith("jsonl") else None)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_column_names_row_and_fix(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("question,answer\nq,a\n")
    with pytest.raises(DataError, match=r"row 1: no column 'body'.*--text-column"):
        read_file(path, RowOptions(text_columns=["body"]))
