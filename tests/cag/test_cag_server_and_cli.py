"""CAG through an OpenAI-compatible server (real HTTP on 127.0.0.1) and the `infuse cag` commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from infuse.cag import ServerCagSession
from infuse.cag import answer as cag_answer
from infuse.cli import cli, main


def test_server_gets_the_identical_knowledge_prefix_and_reports_cached_tokens(
    chat_server, knowledge_file
):
    session = ServerCagSession.from_files(
        [knowledge_file], base_url=chat_server.base_url, model="served"
    )
    session.warm()
    first = session.answer("How long is the refund window?")
    second = session.answer("What does Acme sell?", on_token=lambda piece: None)
    systems = [request["messages"][0] for request in chat_server.requests]
    assert len(systems) == 3 and all(system == systems[0] for system in systems)
    assert (
        systems[0]["role"] == "system" and "The refund window is 45 days." in systems[0]["content"]
    )
    assert first.method == "cag" and first.text == "You asked: How long is the refund window?"
    knowledge_words = len(systems[0]["content"].split())
    assert (
        first.facts["cached_tokens"] == knowledge_words
    )  # the server's prefix cache served the knowledge
    assert second.facts["cached_tokens"] == knowledge_words
    assert "time_to_first_token_s" in second.timings and second.timings["total_s"] > 0


def test_cli_build_then_ask_through_the_python_api(
    long_context_model_dir, knowledge_file, tmp_path, chat_server
):
    cache_dir = tmp_path / "cache"
    result = CliRunner().invoke(
        cli,
        [
            "cag",
            "build",
            str(knowledge_file),
            "--model",
            str(long_context_model_dir),
            "--output",
            str(cache_dir),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["cache_dir"] == str(cache_dir) and payload["knowledge_tokens"] > 30
    assert payload["sources"] == [str(knowledge_file.resolve())]

    answer = cag_answer("How long is the refund window?", cache_dir, max_new_tokens=8)
    assert answer.facts["cache_loaded_from_disk"] is True
    assert answer.facts["knowledge_tokens"] == payload["knowledge_tokens"]
    assert set(answer.timings) >= {"time_to_first_token_s", "total_s"}

    # The same cache folder serves the server path: its knowledge turn goes to the server.
    served = cag_answer(
        "How long is the refund window?", cache_dir, base_url=chat_server.base_url, model="served"
    )
    assert "The refund window is 45 days." in chat_server.requests[-1]["messages"][0]["content"]
    assert served.facts["server"].startswith(chat_server.base_url)

    info = CliRunner().invoke(cli, ["cag", "info", str(cache_dir), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["fingerprint"]["format"] == 1


def test_cli_errors_are_one_line_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "missing.md"
    assert main(["cag", "build", str(missing), "--output", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"Error: Knowledge file {missing} does not exist (or is not a file)."


def test_cli_build_from_a_knowledge_base_reads_every_file_type(long_context_model_dir, tmp_path):
    from knowledge.conftest import build_tiny_embedder  # tests/knowledge: the tiny embedder

    from infuse.knowledge.kb import KnowledgeBase

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nThe refund window is 45 days.\n")
    (docs / "office.html").write_text("<html><body><h1>Office</h1><p>Our office is in Springfield.</p></body></html>")
    kb = KnowledgeBase(tmp_path / "kb", create=True, embedder=str(build_tiny_embedder(tmp_path / "embedder")))
    kb.add([docs])
    kb.close()

    cache_dir = tmp_path / "cache"
    result = CliRunner().invoke(cli, ["cag", "build", "--kb", str(tmp_path / "kb"), "--model",
                                      str(long_context_model_dir), "--output", str(cache_dir),
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(Path(s).name for s in payload["sources"]) == ["office.html", "refunds.md"]
    answer = cag_answer("Where is the office?", cache_dir, max_new_tokens=4)
    assert answer.facts["knowledge_tokens"] == payload["knowledge_tokens"]


def test_cli_build_without_knowledge_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["cag", "build", "--output", str(tmp_path / "c")])
    assert result.exit_code != 0
    assert "Give knowledge FILES or --kb DIR" in str(result.exception or result.output)


def test_the_standard_methods_through_a_server_keep_the_conversation(chat_server, knowledge_file):
    """eval and serve build base and cag over an OpenAI-compatible server the same way."""
    from infuse.methods import MethodOptions, build_methods

    # the scripted server echoes the question: show its answers, do not check them against the knowledge
    options = MethodOptions(model="served", base_url=chat_server.base_url,
                            knowledge=[knowledge_file], max_new_tokens=16, grounded=False)
    (base, cag), skipped = build_methods(["base", "cag"], options)
    assert skipped == []
    history = [{"role": "user", "content": "What does Acme sell?"},
               {"role": "assistant", "content": "Rockets and anvils."}]
    for method in (cag, cag, base):
        result = method.answer("Where do they ship from?", history=history)
        assert result.method == method.name and result.text.startswith("You asked:")
        sent = chat_server.requests[-1]["messages"]
        assert [m["role"] for m in sent][-3:] == ["user", "assistant", "user"]
        assert sent[-3:-1] == history and sent[-1]["content"] == "Where do they ship from?"
    cag_requests = chat_server.requests[:2]
    assert all("The refund window is 45 days." in r["messages"][0]["content"] for r in cag_requests)
    cag.answer("What does Acme sell?")
    second = cag.answer("How long is the refund window?")
    knowledge_words = len(chat_server.requests[-1]["messages"][0]["content"].split())
    assert second.facts["cached_tokens"] == knowledge_words  # the server's prefix cache held it
