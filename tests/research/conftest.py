"""Real HTTP servers on 127.0.0.1 for research: a small site with a SearxNG-compatible /search
(the web search engine is the one thing that cannot run here), a scripted OpenAI-compatible
chat server, and a tiny knowledge base."""

from __future__ import annotations

import json
import re
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from scripted_chat import ScriptedChatServer

PAGES = {
    "/history.html": (
        "Refund history",
        "<p>The refund window was introduced in 2019 by the founder Ada.</p>"
        "<p>Before 2019 there were no refunds at all.</p>",
    ),
    "/weather.html": ("Weather", "<p>It rains a lot in autumn in Springfield.</p>"),
}
WORD = re.compile(r"[a-z0-9]+")


class Site:
    """Pages plus /search?q=...&format=json answering like SearxNG (pages sharing a word)."""

    def __init__(self) -> None:
        self.searches: list[str] = []
        self.fetched: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/search":
                    query = parse_qs(parts.query).get("q", [""])[0]
                    site.searches.append(query)
                    words = set(WORD.findall(query.lower())) - {"the", "is", "a", "of", "how"}
                    results = [
                        {"url": site.url + path, "title": title, "content": body[:60]}
                        for path, (title, body) in PAGES.items()
                        if words & set(WORD.findall(body.lower()))
                    ]
                    self.reply(200, "application/json", json.dumps({"results": results}))
                elif parts.path in PAGES:
                    site.fetched.append(parts.path)
                    title, body = PAGES[parts.path]
                    html = f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>{body}</main></body></html>"
                    self.reply(200, "text/html; charset=utf-8", html)
                else:
                    self.reply(404, "text/plain", "not found")

            def reply(self, status: int, kind: str, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def scripted_reply(messages: list[dict], fake_citation: bool) -> str:
    """What a good research model would say at each step (by the step's system prompt)."""
    system, user = messages[0]["content"], messages[-1]["content"]
    question = user.split("\n", 1)[0].removeprefix("Question: ")
    if system.startswith("You plan"):
        return json.dumps({"queries": ["refund window introduced"]})
    if system.startswith("You check"):
        return json.dumps({"queries": []})
    if system.startswith("You take notes"):
        source = user.split("Source:\n", 1)[1]
        qwords = set(WORD.findall(question.lower())) - {"the", "is", "how", "and", "when", "was", "it", "long"}
        facts = [s.strip() for s in re.split(r"(?<=\.)\s+|\n+", source)
                 if s.strip().endswith(".") and qwords & set(WORD.findall(s.lower()))]
        return json.dumps({"facts": facts[:2]})
    if system.startswith("You write"):
        notes = re.findall(r"^\[(\d+)\] (.+)$", user, re.M)
        text = " ".join(f"{fact} [{n}]" for n, fact in notes)
        if fake_citation:
            text += " Refunds are also paid in gold bars [99]."
        return text
    raise AssertionError(f"unexpected prompt: {system[:60]}")


def scripted_chat(fake_citation: bool = False) -> ScriptedChatServer:
    """A chat server answering each research step as a good model would."""
    return ScriptedChatServer(lambda messages: scripted_reply(messages, fake_citation))


@pytest.fixture
def site():
    with closing(Site()) as served:
        yield served


@pytest.fixture
def kb(refunds_kb):
    return refunds_kb
