"""`infuse kb ...` and `infuse eval retrieval` end to end through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from infuse.cli import main


@pytest.fixture
def kb_env(tmp_path, tiny_embedder_dir, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policies.md").write_text("# Policies\n\n## Refunds\n\nThe refund window is 45 days.\n")
    (docs / "office.txt").write_text("Our office is in Springfield.")
    (docs / "junk.txt").write_bytes(b"\x00\x00binary\x00")
    monkeypatch.setenv("INFUSE_KB", str(tmp_path / "kb"))
    return docs, str(tiny_embedder_dir)


def _json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_kb_add_search_list_remove_sync(kb_env, capsys):
    docs, embedder = kb_env
    assert main(["kb", "add", str(docs), "--embedder", embedder]) == 0
    captured = capsys.readouterr()
    assert "2 added" in captured.out
    assert "junk.txt" in captured.err and "binary" in captured.err

    assert main(["kb", "search", "refund window", "--json"]) == 0
    payload = _json(capsys)
    first = payload["results"][0]
    assert first["source"] == str(docs / "policies.md") and "45 days" in first["text"]
    assert isinstance(first["score"], float)

    assert main(["kb", "search", "refund window", "-k", "1"]) == 0
    assert str(docs / "policies.md") in capsys.readouterr().out

    assert main(["kb", "list", "--json"]) == 0
    assert {d["doc_id"] for d in _json(capsys)["documents"]} == {
        str(docs / "policies.md"),
        str(docs / "office.txt"),
    }

    (docs / "office.txt").unlink()
    assert main(["kb", "sync", "--json"]) == 0
    assert _json(capsys)["removed"] == [str(docs / "office.txt")]

    assert main(["kb", "remove", str(docs / "policies.md"), "--json"]) == 0
    assert _json(capsys)["removed"] == [str(docs / "policies.md")]
    assert main(["kb", "remove", "missing.md"]) == 1


def test_kb_rows_with_columns_and_filter(kb_env, tmp_path, capsys):
    _, embedder = kb_env
    rows = tmp_path / "faq.jsonl"
    rows.write_text(
        json.dumps({"id": "a", "q": "refund window?", "team": "support"})
        + "\n"
        + json.dumps({"id": "b", "q": "refund for resellers?", "team": "sales"})
        + "\n"
    )
    assert (
        main(
            [
                "kb",
                "add",
                str(rows),
                "--embedder",
                embedder,
                "--text-column",
                "q",
                "--metadata-column",
                "team",
                "--id-column",
                "id",
                "--json",
            ]
        )
        == 0
    )
    assert len(_json(capsys)["added"]) == 2
    assert main(["kb", "search", "refund", "--filter", "team=sales", "--json"]) == 0
    results = _json(capsys)["results"]
    assert [r["doc_id"] for r in results] == [f"{rows}#b"]
    assert results[0]["metadata"] == {"team": "sales"}


def test_bad_filter_is_one_line_error(kb_env, capsys):
    assert main(["kb", "search", "x", "--filter", "nokey"]) == 1
    assert "--filter 'nokey': expected KEY=VALUE" in capsys.readouterr().err


def test_eval_retrieval_command(kb_env, tmp_path, capsys):
    from click.testing import CliRunner

    from infuse.cli.eval_retrieval import retrieval

    docs, embedder = kb_env
    assert main(["kb", "add", str(docs), "--embedder", embedder, "--json"]) == 0
    capsys.readouterr()
    (tmp_path / "q.tsv").write_text("1\tHow long is the refund window?\n2\tWhere is the office?\n")
    (tmp_path / "qrels.tsv").write_text("1\tpolicies\t1\n2\toffice\t1\n")
    result = CliRunner().invoke(
        retrieval,
        ["--queries", str(tmp_path / "q.tsv"), "--qrels", str(tmp_path / "qrels.tsv"), "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["queries"] == 2
    assert set(payload["metrics"]) == {"bm25", "dense", "hybrid", "hybrid+rerank"}
    assert payload["metrics"]["hybrid"]["recall@10"] == 1.0


def test_kb_show_gives_the_full_text_and_chunks(kb_env, capsys):
    docs, embedder = kb_env
    assert main(["kb", "add", str(docs / "policies.md"), "--embedder", embedder, "--json"]) == 0
    capsys.readouterr()
    assert main(["kb", "show", str(docs / "policies.md"), "--json"]) == 0
    shown = _json(capsys)
    assert shown["text"] == (docs / "policies.md").read_text().strip()
    assert shown["source"] == str(docs / "policies.md")
    assert [chunk["position"] for chunk in shown["chunks"]] == [0]
    assert main(["kb", "show", str(docs / "policies.md"), "--chunks"]) == 0
    assert "chunk 1/1" in capsys.readouterr().out
    assert main(["kb", "show", "nope.md"]) == 1
    assert "No document 'nope.md'" in capsys.readouterr().err


def test_kb_add_warns_about_a_partly_scanned_pdf(kb_env, capsys):
    from reportlab.pdfgen import canvas

    docs, embedder = kb_env
    pdf = canvas.Canvas(str(docs / "partly.pdf"))
    pdf.drawString(72, 760, "Page one has the launch code 7741.")
    pdf.showPage()
    pdf.rect(100, 100, 300, 400, fill=1)  # page two: a scan, no text layer
    pdf.showPage()
    pdf.save()
    assert main(["kb", "add", str(docs / "partly.pdf"), "--embedder", embedder]) == 0
    err = capsys.readouterr().err
    assert "Warning" in err and "1 of 2 pages have no text layer" in " ".join(err.split())
    assert main(["kb", "add", str(docs / "partly.pdf"), "--embedder", embedder, "--json"]) == 0
    assert _json(capsys)["warnings"][0]["path"].endswith("partly.pdf")
