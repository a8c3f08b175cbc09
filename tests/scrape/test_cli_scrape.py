"""`infuse scrape crawl` through the real CLI entry point against the local test site."""

from __future__ import annotations

import json

from infuse.cli import main


def test_crawl_to_markdown_folder_json(small_site, tmp_path, capsys):
    out = tmp_path / "pages"
    code = main(
        [
            "scrape",
            "crawl",
            small_site.url("/"),
            "--out",
            str(out),
            "--allow-private",
            "--delay",
            "0",
            "--timeout",
            "0.5",
            "--max-bytes",
            "100000",
            "--render",
            "never",
            "--state",
            str(tmp_path / "state.json"),
            "--json",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["counts"]["added"] == 4
    skipped = {page["url"]: page for page in payload["pages"] if page["state"] == "skipped"}
    assert "robots.txt" in skipped[small_site.url("/private/secret.html")]["reason"]
    assert skipped[small_site.url("/logo.png")]["status"] == 200
    host = f"127.0.0.1_{small_site.port}"
    guide = (out / host / "guide.md").read_text()
    assert guide.startswith(f'---\nsource: "{small_site.url("/guide.html")}"')
    assert "## Install" in guide
    assert (out / host / "index.md").is_file() and not (tmp_path / "state.json").exists()


def test_crawl_refuses_loopback_by_default(small_site, tmp_path, capsys):
    code = main(
        ["scrape", "crawl", small_site.url("/"), "--out", str(tmp_path / "o"), "--delay", "0"]
    )
    err = capsys.readouterr().err
    assert code == 1
    last = err.strip().splitlines()[-1]  # the error, on one line
    assert (
        last.startswith("Error: Nothing crawled")
        and "loopback" in last
        and "--allow-private" in last
    )
    assert small_site.log == []


def test_out_folder_must_be_ours(small_site, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code = main(["scrape", "crawl", small_site.url("/"), "--out", str(tmp_path), "--allow-private"])
    assert code == 1 and "did not write" in capsys.readouterr().err
