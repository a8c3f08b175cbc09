"""The bad-input corpus: hostile or careless uses of every command, each with the verdict a
user must get.

A case is a command line (with `{tmp}` standing for a fresh folder the case's `setup` filled),
the verdict expected, and for errors a pattern the one-line message must match (the file, row,
URL or setting it names). `classify` runs a case and says what a user saw:

- "clear error": exit code non-zero, a short message on stderr, no traceback;
- "handled": exit code 0 and the bad part named (a warning, a skip with its reason);
- "traceback": a Python traceback reached the user;
- "silent": exit code 0 and nothing said about the bad input.

`python -m tests.badinput.corpus` prints the tally (used for the before/after counts).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLEAR, HANDLED, TRACEBACK, SILENT = "clear error", "handled", "traceback", "silent"


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str = CLEAR
    match: str = ""  # regex the message (stderr + stdout) must match
    setup: Callable[[Path], None] | None = None
    check: Callable[[Path], None] | None = None  # asserts the user's data is intact
    subprocess: bool = False  # run as a real process (commands that would serve forever)
    timeout_s: float = 120.0
    tags: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    verdict: str
    code: int
    output: str


def _write(rel: str, text: str | bytes):
    def setup(tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")

    return setup


def _all(*setups):
    def setup(tmp: Path) -> None:
        for step in setups:
            step(tmp)

    return setup


GOOD_JSONL = '{"instruction": "Q1?", "output": "A1"}\n{"instruction": "Q2?", "output": "A2"}\n'
QUESTIONS = '{"question": "What is it?", "answer": "this"}\n'


def _readme_intact(tmp: Path) -> None:
    assert (tmp / "mine" / "README.md").read_text() == "my notes\n"


def _data_intact(tmp: Path) -> None:
    assert (tmp / "data.jsonl").read_text() == GOOD_JSONL


def _unwritable(tmp: Path) -> None:
    # A file where a folder is needed: unwritable even for root (CI runs as root).
    (tmp / "ro").write_text("a file, not a folder\n")


def _empty_folder(tmp: Path) -> None:
    (tmp / "empty").mkdir()


def _foreign_folder(tmp: Path) -> None:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "README.md").write_text("my notes\n")


def _not_a_run(tmp: Path) -> None:
    (tmp / "notrun").mkdir()
    (tmp / "notrun" / "notes.txt").write_text("hello\n")


CASES: list[Case] = [
    # --- data inspect -------------------------------------------------------------------
    Case("inspect missing file", ["data", "inspect", "{tmp}/nope.jsonl"], match="nope.jsonl"),
    Case("inspect malformed line", ["data", "inspect", "{tmp}/bad.jsonl"], match=r"bad.jsonl.*line 2",
         setup=_write("bad.jsonl", '{"instruction": "a", "output": "b"}\n{not json\n')),
    Case("inspect binary file", ["data", "inspect", "{tmp}/blob.jsonl"], match="blob.jsonl",
         setup=_write("blob.jsonl", bytes(range(256)) * 8)),
    Case("inspect empty file", ["data", "inspect", "{tmp}/empty.jsonl"], match="empty.jsonl",
         setup=_write("empty.jsonl", "")),
    Case("inspect --samples -1", ["data", "inspect", "{tmp}/data.jsonl", "--samples", "-1"],
         match="samples", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("inspect --max-seq-len 0", ["data", "inspect", "{tmp}/data.jsonl", "--max-seq-len", "0"],
         match="max-seq-len", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("inspect missing output column",
         ["data", "inspect", "{tmp}/cols.jsonl", "--merged-prompt", "{question}",
          "--output-column", "reply"], match="reply",
         setup=_write("cols.jsonl", '{"question": "q", "answer": "a"}\n')),
    Case("inspect negative conversation extension",
         ["data", "inspect", "{tmp}/data.jsonl", "--conversation-extension", "-3"],
         match="conversation-extension", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("inspect plot into unwritable folder",
         ["data", "inspect", "{tmp}/data.jsonl", "--plot", "{tmp}/ro/x.png"], match="ro",
         setup=_all(_write("data.jsonl", GOOD_JSONL), _unwritable)),
    Case("inspect wrong type in answer", ["data", "inspect", "{tmp}/typed.jsonl"],
         match=r"typed.jsonl.*(row|line) 1.*output", setup=_write("typed.jsonl", '{"instruction": "a", "output": {"x": 1}}\n')),
    # --- data convert -------------------------------------------------------------------
    Case("convert onto its own input", ["data", "convert", "{tmp}/data.jsonl", "{tmp}/data.jsonl", "--to", "messages"],
         match="data.jsonl", setup=_write("data.jsonl", GOOD_JSONL), check=_data_intact),
    Case("convert missing prompt column",
         ["data", "convert", "{tmp}/cols.jsonl", "{tmp}/out.jsonl", "--to", "messages", "--merged-prompt", "{nope}",
          "--output-column", "answer"], match="nope",
         setup=_write("cols.jsonl", '{"question": "q", "answer": "a"}\n')),
    Case("convert into unwritable folder", ["data", "convert", "{tmp}/data.jsonl", "{tmp}/ro/out.jsonl", "--to", "messages"],
         match="ro", setup=_all(_write("data.jsonl", GOOD_JSONL), _unwritable)),
    Case("convert unknown format", ["data", "convert", "{tmp}/data.jsonl", "{tmp}/o.jsonl", "--to", "xml"],
         match="xml", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("convert JSON that is not a list", ["data", "convert", "{tmp}/obj.json", "{tmp}/o.jsonl", "--to", "messages"],
         match="obj.json", setup=_write("obj.json", '{"a": 1}')),
    Case("convert null answers are dropped and counted",
         ["data", "convert", "{tmp}/nulls.jsonl", "{tmp}/o.jsonl", "--to", "messages"], expect=HANDLED,
         match=r"(?i)(null|empty)", setup=_write(
             "nulls.jsonl", '{"instruction": "a", "output": null}\n{"instruction": "b", "output": "B"}\n')),
    # --- train --------------------------------------------------------------------------
    Case("train rank 0", ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/run", "--lora-r", "0"],
         match="lora", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("train missing data", ["train", "--data", "{tmp}/nope.jsonl", "--output", "{tmp}/run"],
         match="nope.jsonl"),
    Case("train into a foreign folder",
         ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/mine"], match="mine",
         setup=_all(_write("data.jsonl", GOOD_JSONL), _foreign_folder), check=_readme_intact),
    Case("train batch size 0", ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/run",
                                "--batch-size", "0"], match="batch", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("train negative learning rate", ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/run",
                                          "--learning-rate", "-1"], match="(?i)learning",
         setup=_write("data.jsonl", GOOD_JSONL)),
    Case("train eval split over 1", ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/run",
                                     "--eval-split", "1.5"], match="(?i)eval", setup=_write("data.jsonl", GOOD_JSONL)),
    Case("train missing config file", ["train", "--config", "{tmp}/nope.toml"], match="nope.toml"),
    Case("train malformed config", ["train", "--config", "{tmp}/bad.toml"], match="bad.toml",
         setup=_write("bad.toml", "model = [unclosed\n")),
    Case("train resume without a run", ["train", "--output", "{tmp}/norun", "--resume"], match="norun"),
    Case("train unknown model path", ["train", "--model", "{tmp}/no-model", "--data", "{tmp}/data.jsonl",
                                      "--output", "{tmp}/run"], match="no-model",
         setup=_write("data.jsonl", GOOD_JSONL)),
    Case("train into unwritable folder", ["train", "--data", "{tmp}/data.jsonl", "--output", "{tmp}/ro/run"],
         match="ro", setup=_all(_write("data.jsonl", GOOD_JSONL), _unwritable)),
    Case("train every answer empty", ["train", "--data", "{tmp}/blank.jsonl", "--output", "{tmp}/run"],
         match=r"(?i)(empty|answer)", setup=_write(
             "blank.jsonl", '{"instruction": "a", "output": ""}\n{"instruction": "b", "output": " "}\n')),
    # --- generate / export / chat -------------------------------------------------------
    Case("generate missing run", ["generate", "{tmp}/norun", "hello"], match="norun"),
    Case("generate folder that is not a run", ["generate", "{tmp}/notrun", "hello"], match="notrun",
         setup=_not_a_run),
    Case("export missing run", ["export", "{tmp}/norun", "--output", "{tmp}/out"], match="norun"),
    Case("export folder that is not a run", ["export", "{tmp}/notrun", "--output", "{tmp}/out"],
         match="notrun", setup=_not_a_run),
    Case("export unknown format", ["export", "{tmp}/notrun", "--format", "onnx", "--output", "{tmp}/o"],
         match="onnx", setup=_not_a_run),
    # --- knowledge base -----------------------------------------------------------------
    Case("kb search missing kb", ["kb", "search", "refund", "--kb", "{tmp}/nokb"], match="nokb",
         check=lambda tmp: _assert_absent(tmp / "nokb")),
    Case("kb list missing kb", ["kb", "list", "--kb", "{tmp}/nokb"], match="nokb",
         check=lambda tmp: _assert_absent(tmp / "nokb")),
    Case("kb sync missing kb", ["kb", "sync", "--kb", "{tmp}/nokb"], match="nokb"),
    Case("kb remove missing kb", ["kb", "remove", "x", "--kb", "{tmp}/nokb"], match="nokb"),
    Case("kb add nothing there", ["kb", "add", "{tmp}/nothing-here", "--kb", "{tmp}/kb"],
         match="nothing-here", check=lambda tmp: _assert_absent(tmp / "kb")),
    Case("kb add chunk tokens 0", ["kb", "add", "{tmp}/a.md", "--kb", "{tmp}/kb", "--chunk-tokens", "0"],
         match="chunk-tokens", setup=_write("a.md", "# A\n\nText.\n")),
    Case("kb add overlap too large", ["kb", "add", "{tmp}/a.md", "--kb", "{tmp}/kb", "--overlap-tokens", "500"],
         match="(?i)overlap", setup=_write("a.md", "# A\n\nText.\n")),
    Case("kb add bad --meta", ["kb", "add", "{tmp}/a.md", "--kb", "{tmp}/kb", "--meta", "novalue"],
         match="meta", setup=_write("a.md", "# A\n\nText.\n")),
    Case("kb search bad --filter", ["kb", "search", "x", "--kb", "{tmp}/nokb", "--filter", "bad key=1"],
         match="(?i)(filter|nokb)"),
    Case("kb add CSV missing text column", ["kb", "add", "{tmp}/t.csv", "--kb", "{tmp}/kb",
                                            "--text-column", "body"], expect=HANDLED, match="t.csv.*body",
         setup=_write("t.csv", "title,text\nA,hello\n")),
    # --- ask ----------------------------------------------------------------------------
    Case("ask missing kb", ["ask", "What?", "--kb", "{tmp}/nokb"], match="nokb",
         check=lambda tmp: _assert_absent(tmp / "nokb")),
    Case("ask cag without cache", ["ask", "What?", "--mode", "cag"], match="(?i)cache"),
    Case("ask cag missing cache", ["ask", "What?", "--mode", "cag", "--cache", "{tmp}/nocache"],
         match="nocache"),
    Case("ask cag damaged cache", ["ask", "What?", "--mode", "cag", "--cache", "{tmp}/cache"],
         match="cache", setup=_all(_write("cache/manifest.json", "{broken"), _write("cache/kv.safetensors", b"\0" * 64))),
    Case("ask max new tokens 0", ["ask", "What?", "--kb", "{tmp}/nokb", "--max-new-tokens", "0"],
         match="(?i)(max-new-tokens|nokb)"),
    Case("ask empty question", ["ask", "   ", "--kb", "{tmp}/nokb"], match="(?i)(question|nokb)"),
    # --- cag build ----------------------------------------------------------------------
    Case("cag build no files", ["cag", "build", "--output", "{tmp}/c"], match="(?i)(files|knowledge)"),
    Case("cag build missing file", ["cag", "build", "{tmp}/nope.md", "--output", "{tmp}/c"], match="nope.md"),
    Case("cag build negative answer room", ["cag", "build", "{tmp}/a.md", "--output", "{tmp}/c",
                                            "--answer-room", "-5"], match="answer-room",
         setup=_write("a.md", "# A\n\nText.\n")),
    Case("cag build missing kb", ["cag", "build", "--kb", "{tmp}/nokb", "--output", "{tmp}/c"], match="nokb"),
    Case("cag build into unwritable folder", ["cag", "build", "{tmp}/a.md", "--output", "{tmp}/ro/c"],
         match="ro", setup=_all(_write("a.md", "# A\n\nText.\n"), _unwritable)),
    # --- eval ---------------------------------------------------------------------------
    Case("eval without questions", ["eval"], match="questions"),
    Case("eval missing questions file", ["eval", "--questions", "{tmp}/nope.jsonl"], match="nope.jsonl"),
    Case("eval malformed questions", ["eval", "--questions", "{tmp}/q.jsonl", "--methods", "base"],
         match=r"q.jsonl.*line 1", setup=_write("q.jsonl", "{oops\n")),
    Case("eval unknown method", ["eval", "--questions", "{tmp}/q.jsonl", "--methods", "magic"],
         match="magic", setup=_write("q.jsonl", QUESTIONS)),
    Case("eval max new tokens 0", ["eval", "--questions", "{tmp}/q.jsonl", "--max-new-tokens", "0"],
         match="max-new-tokens", setup=_write("q.jsonl", QUESTIONS)),
    Case("eval missing run", ["eval", "--questions", "{tmp}/q.jsonl", "--run", "{tmp}/norun",
                              "--methods", "lora"], match="norun", setup=_write("q.jsonl", QUESTIONS)),
    Case("eval missing knowledge", ["eval", "--questions", "{tmp}/q.jsonl", "--knowledge", "{tmp}/nodocs",
                                    "--methods", "rag"], match="nodocs", setup=_write("q.jsonl", QUESTIONS)),
    Case("eval empty reference answer", ["eval", "--questions", "{tmp}/q.jsonl", "--methods", "base"],
         match=r"line 1.*null", setup=_write("q.jsonl", '{"question": "Q?", "answer": ""}\n')),
    Case("eval into unwritable folder", ["eval", "--questions", "{tmp}/q.jsonl", "--methods", "base",
                                         "--output", "{tmp}/ro/report"], match="ro",
         setup=_all(_write("q.jsonl", QUESTIONS), _unwritable)),
    Case("eval retrieval binary queries", ["eval", "retrieval", "--queries", "{tmp}/q.bin", "--qrels",
                                           "{tmp}/qrels.tsv", "--kb", "{tmp}/nokb"],
         match="(?i)(q.bin|nokb)", setup=_all(_write("q.bin", bytes(range(256)) * 4),
                                              _write("qrels.tsv", "q1\td1\t1\n"))),
    Case("eval retrieval missing qrels", ["eval", "retrieval", "--queries", "{tmp}/q.jsonl", "--qrels",
                                          "{tmp}/none.tsv"], match="none.tsv", setup=_write("q.jsonl", QUESTIONS)),
    # --- quickstart ---------------------------------------------------------------------
    Case("quickstart missing folder", ["quickstart", "{tmp}/nofolder"], match="nofolder"),
    Case("quickstart empty folder", ["quickstart", "{tmp}/empty"], match="empty", setup=_empty_folder),
    Case("quickstart epochs 0", ["quickstart", "--epochs", "0", "--output", "{tmp}/qs"], match="epochs"),
    # --- scrape -------------------------------------------------------------------------
    Case("crawl refuses loopback by default", ["scrape", "crawl", "http://127.0.0.1:9/", "--out", "{tmp}/pages", "--json"],
         match=r"127.0.0.1.*loopback.*allow-private"),
    Case("crawl unsupported scheme", ["scrape", "crawl", "ftp://example.org/", "--out", "{tmp}/pages"], match="ftp"),
    Case("crawl max pages 0", ["scrape", "crawl", "https://example.org/", "--out", "{tmp}/pages", "--max-pages", "0"],
         match="max-pages"),
    Case("extract missing schema", ["scrape", "extract", "{tmp}/page.html", "--schema", "{tmp}/none.json"],
         match="none.json", setup=_write("page.html", "<p>Hi</p>")),
    Case("extract malformed schema", ["scrape", "extract", "{tmp}/page.html", "--schema", "{tmp}/bad.json"],
         match="bad.json", setup=_all(_write("page.html", "<p>Hi</p>"), _write("bad.json", "{nope"))),
    # --- unwritable outputs of the other writers -----------------------------------------
    Case("kb add into unwritable folder", ["kb", "add", "{tmp}/a.md", "--kb", "{tmp}/ro/kb"], match="ro",
         setup=_all(_write("a.md", "# A\n\nText.\n"), _unwritable)),
    Case("quickstart into unwritable folder", ["quickstart", "--output", "{tmp}/ro/qs"], match="ro",
         setup=_unwritable),
    Case("export into unwritable folder", ["export", "{tmp}/notrun", "--output", "{tmp}/ro/out"],
         match="(notrun|ro)", setup=_all(_not_a_run, _unwritable)),
    Case("crawl into unwritable folder", ["scrape", "crawl", "https://example.org/", "--out", "{tmp}/ro/pages"],
         match="ro", setup=_unwritable),
    Case("research report into unwritable folder", ["research", "What?", "--kb", "{tmp}/nokb", "--search", "none",
                                                    "--out", "{tmp}/ro/report.md"], match="(ro|nokb)",
         setup=_unwritable),
    # --- serve --------------------------------------------------------------------------
    Case("serve on all interfaces without a token", ["serve", "--host", "0.0.0.0", "--port", "8765"],
         match="(?i)token", subprocess=True),
    Case("serve missing token file", ["serve", "--token-file", "{tmp}/none.txt", "--port", "8766"],
         match="none.txt", subprocess=True),
    Case("serve missing kb", ["serve", "--kb", "{tmp}/nokb", "--port", "8767"], match="nokb",
         subprocess=True),
]


def _assert_absent(path: Path) -> None:
    assert not path.exists(), f"{path} was created by a command that only reads"


def _expand(argv: list[str], tmp: Path) -> list[str]:
    return [arg.replace("{tmp}", str(tmp)) for arg in argv]


def _verdict(code: int, output: str, crashed: bool) -> str:
    if crashed or "Traceback (most recent call last)" in output:
        return TRACEBACK
    if code != 0:
        return CLEAR if output.strip() else SILENT
    return HANDLED if output.strip() else SILENT


def classify(case: Case, tmp: Path) -> Outcome:
    """Run one case in `tmp` (its setup first) and say what the user saw."""
    if case.setup is not None:
        case.setup(tmp)
    argv = _expand(case.argv, tmp)
    if case.subprocess:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "infuse", *argv], cwd=tmp, capture_output=True, text=True,
                timeout=case.timeout_s, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            )
        except subprocess.TimeoutExpired:
            return Outcome(SILENT, 0, f"still running after {case.timeout_s:.0f} s (it started)")
        output = done.stderr + done.stdout
        return Outcome(_verdict(done.returncode, output, False), done.returncode, output)
    from infuse.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    crashed = False
    previous = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 - a crash is what this classifies
        crashed, code = True, 1
        stderr.write(traceback.format_exc())
    finally:
        os.chdir(previous)
    output = stderr.getvalue() + stdout.getvalue()
    return Outcome(_verdict(code, output, crashed), code, output)


def passes(case: Case, outcome: Outcome) -> bool:
    """The verdict is the expected one and the message names what it should."""
    if outcome.verdict != case.expect:
        return False
    return not case.match or re.search(case.match, outcome.output, re.DOTALL) is not None


def main() -> None:
    """Print each case's verdict and the tally (clear error / handled / traceback / silent)."""
    import tempfile

    tally: dict[str, int] = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            try:
                outcome = classify(case, Path(folder))
            except Exception as error:  # noqa: BLE001 - a broken setup is reported, not fatal
                outcome = Outcome(TRACEBACK, 1, repr(error))
        tally[outcome.verdict] = tally.get(outcome.verdict, 0) + 1
        mark = "ok " if passes(case, outcome) else "BAD"
        first = (outcome.output.strip().splitlines() or [""])[-1][:110]
        print(f"{mark} {outcome.verdict:12} {case.name:45} {first}")
    print(", ".join(f"{count} {verdict}" for verdict, count in sorted(tally.items())),
          f"of {len(CASES)} cases")


if __name__ == "__main__":
    main()
