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


def test_interrupted_crawl_exits_130_and_resumes(site, tmp_path, capsys, monkeypatch):
    import importlib

    from scrape_site import FILLER, Response, article

    crawl_module = importlib.import_module("infuse.scrape.crawl")  # the module, not the function

    links = [f"/p{number}.html" for number in range(4)]
    site.pages["/"] = Response(article("Home", [FILLER], links))
    for link in links:
        site.pages[link] = Response(article(link, [FILLER]))
    real_visit = crawl_module._visit
    calls = []

    def interrupt_on_third(*args, **kwargs):  # what Ctrl-C does in the middle of a crawl
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_visit(*args, **kwargs)

    monkeypatch.setattr(crawl_module, "_visit", interrupt_on_third)
    state, out = tmp_path / "state.json", tmp_path / "out"
    command = [
        "scrape",
        "crawl",
        site.url("/"),
        "--out",
        str(out),
        "--allow-private",
        "--delay",
        "0",
        "--no-sitemap",
        "--render",
        "never",
        "--state",
        str(state),
    ]
    assert main(command) == 130
    assert "Run the same command again to resume" in capsys.readouterr().err and state.is_file()
    monkeypatch.setattr(crawl_module, "_visit", real_visit)
    assert main(command) == 0 and not state.exists()
    assert len(list(out.rglob("*.md"))) == 5
