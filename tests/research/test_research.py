"""infuse research: kb first, web through the crawler's fetcher, a cited report within budgets,
citations checked against what was read."""

from __future__ import annotations

import pytest

from infuse.research import NO_ANSWER, Budget, ResearchSession, check_citations, web_search
from infuse.scrape.fetch import FetchConfig
from research.conftest import scripted_chat

QUESTION = "When was the refund window introduced and how long is the refund window?"
LOCAL = FetchConfig(allow_private=True, min_delay=0.0, adapt_to_latency=False)


def session(chat, kb, site, budget=None):
    from infuse.llm import load_chat_model

    model = load_chat_model("stub", base_url=chat.base_url, api_key="x")
    return ResearchSession(model, kb=kb, search=f"searxng:{site.url}", budget=budget,
                           fetch_config=LOCAL, min_similarity=None)


@pytest.fixture
def chat():
    with scripted_chat(fake_citation=True) as server:
        yield server


def test_report_cites_kb_and_web_sources_read_within_budget(chat, kb, site):
    budget = Budget(depth=2, breadth=2, pages=2, model_calls=12, seconds=60)
    progress = []
    answer = session(chat, kb, site, budget).answer(
        QUESTION, on_progress=lambda done, total, **info: progress.append(info["step"]))
    facts = answer.facts
    read = {s["source"] for s in facts["sources_read"]}
    assert facts["pages_fetched"] <= 2 and len(site.fetched) <= 2
    assert facts["model_calls"] <= 12 and len(chat.requests) == facts["model_calls"]
    assert answer.timings["total_s"] < 60
    kinds = {c.metadata["kind"] for c in answer.citations}
    assert kinds == {"kb", "web"}, answer.text
    assert all(c.source in read for c in answer.citations)
    assert "45 days" in answer.text and "2019" in answer.text
    assert "## Sources" in answer.text and site.url + "/history.html" in answer.text
    # the injected [99] cites nothing read: removed and counted
    assert facts["dropped_citations"] == [99] and "[99]" not in answer.text
    assert "gold bars" in answer.text  # the sentence stays, without the citation
    assert not answer.no_answer
    assert site.searches and "kb" in progress and progress[-1] == "done"


def test_a_question_nothing_answers_says_so(chat, kb, site):
    answer = session(chat, kb, site).answer("What is the capital city of Mars?")
    assert answer.no_answer
    assert NO_ANSWER in answer.text
    assert answer.citations == []


def test_unsupported_sentence_is_flagged_and_unknown_citation_dropped():
    check = check_citations(
        "The window is 45 days [1]. Ada founded a bakery in Paris [1]. Made up [7].",
        {1: "The refund window is 45 days."},
    )
    assert check.cited == [1] and check.dropped == [7]
    assert "[7]" not in check.report
    assert [f["sentence"] for f in check.flagged] == ["Ada founded a bakery in Paris [1]."]


def test_budget_of_model_calls_is_kept_and_named(chat, kb, site):
    answer = session(chat, kb, site, Budget(model_calls=2, pages=1)).answer(QUESTION)
    assert len(chat.requests) <= 2
    assert any("budget spent" in why for why in answer.facts["skipped"])
    assert "## Skipped" in answer.text


def test_search_spec_errors_name_the_fix(monkeypatch):
    from infuse.errors import ConfigError

    monkeypatch.delenv("BRAVE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="BRAVE_API_KEY"):
        web_search("brave")
    with pytest.raises(ConfigError, match="searxng:http"):
        web_search("searxng:localhost")
    with pytest.raises(ConfigError, match="choose one of"):
        web_search("google")
    assert web_search("none") is None


def test_cli_writes_the_report_and_json(chat, kb, site, tmp_path):
    import json

    from click.testing import CliRunner

    from infuse.cli import cli

    out = tmp_path / "report.md"
    result = CliRunner().invoke(cli, [
        "research", QUESTION, "--kb", str(kb.location), "--search", f"searxng:{site.url}",
        "--base-url", chat.base_url, "--api-key", "x", "--allow-private", "--depth", "1",
        "--breadth", "2", "--max-pages", "2", "--out", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) >= {"report", "citations", "dropped_citations", "timings"}
    assert payload["dropped_citations"] == [99]
    assert out.read_text() == payload["report"]
    assert {c["metadata"]["kind"] for c in payload["citations"]} == {"kb", "web"}


def test_cli_refuses_bad_budget():
    from click.testing import CliRunner

    from infuse.cli import cli
    from infuse.errors import ConfigError

    result = CliRunner().invoke(cli, ["research", "Q", "--depth", "0"])
    assert isinstance(result.exception, ConfigError) and "--depth 0" in str(result.exception)


def test_mcp_research_tool(chat, kb):
    import anyio
    from mcp import Client

    from infuse.llm import load_chat_model
    from infuse.serve.assistant import Assistant
    from infuse.serve.library import Library
    from infuse.serve.mcp_server import build_mcp_server
    from infuse.serve.settings import ServeSettings

    library = Library(kb)
    assistant = Assistant(ServeSettings(kb=str(kb.location)), library, methods={})
    assistant.base_model = load_chat_model("stub", base_url=chat.base_url, api_key="x")
    server = build_mcp_server(library, assistant)

    async def main():
        async with Client(server) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert "research" in tools
            done = await client.call_tool("research", {"question": QUESTION})
            assert not done.is_error, done.content
            return done.structured_content

    result = anyio.run(main)
    assert "45 days" in result["report"] and result["dropped_citations"] == [99]
    assert result["citations"] and result["citations"][0]["source"].endswith("policies.md")
