"""The research loop: knowledge base first, plan, search, read, note, follow up, write, check.

    ResearchSession(model, kb=..., search=..., budget=...).answer(question) -> Answer
    research(question, model=..., kb=..., search="searxng:URL") -> Answer   (one-shot)

Every model step is a plain prompt asking for a small JSON object (`response_format`, so a
local model decodes it constrained; servers are validated by `infuse.llm`); its output is
parsed and checked here, retried once, then skipped with the reason written into the report.
That keeps the 135M default able to drive it. Budgets (depth, breadth, pages, model calls,
wall time) are checked before each step; what a budget cut is listed in `facts["skipped"]`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from infuse.answer import Answer, AnswerMethod, Citation
from infuse.research.citations import check_citations, content_words
from infuse.research.websearch import SearchError, WebSearch, web_search

NO_ANSWER = "The sources read do not answer this question."
SOURCE_CHARS = 1500  # of each source shown to the model when noting
MIN_SIMILARITY = 0.25
MIN_OVERLAP = 0.3  # share of the question's content words a source must hold to be noted


@dataclass
class Budget:
    depth: int = 2  # rounds of search (the first plus follow-ups)
    breadth: int = 3  # sub-questions per round
    pages: int = 6  # web pages fetched in all
    model_calls: int = 24
    seconds: float = 300.0
    kb_k: int = 3  # passages per kb search

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Source:
    number: int
    source: str  # a URL or the kb source
    kind: str  # "kb" | "web"
    title: str
    text: str
    notes: list[str] = field(default_factory=list)


_PLAN = {
    "type": "object",
    "properties": {"queries": {"type": "array", "items": {"type": "string", "maxLength": 120},
                               "maxItems": 5}},
    "required": ["queries"],
}
_NOTE = {
    "type": "object",
    "properties": {"facts": {"type": "array", "items": {"type": "string", "maxLength": 300},
                             "maxItems": 4}},
    "required": ["facts"],
}


class _OutOfBudget(Exception):
    pass


class ResearchSession(AnswerMethod):
    """A model, a knowledge base (optional), a web search backend (optional) and a fetcher.

    `kb`: a KnowledgeBase or None; `search`: a WebSearch, a spec for `web_search`, or None;
    `fetch_config`: the crawler's FetchConfig (tests allow 127.0.0.1 with it).
    """

    name = "research"

    def __init__(self, model: Any, *, kb: Any = None, search: WebSearch | str | None = None,
                 budget: Budget | None = None, fetch_config: Any = None, to_kb: Any = None,
                 max_new_tokens: int = 400, name: str = "research",
                 min_similarity: float | None = MIN_SIMILARITY) -> None:
        self.model, self.kb, self.name = model, kb, name
        self.search = web_search(search) if isinstance(search, str) or search is None else search
        self.budget = budget or Budget()
        self.fetch_config = fetch_config
        self.to_kb = to_kb
        self.max_new_tokens = max_new_tokens
        self.min_similarity = min_similarity
        self.facts: dict[str, Any] = {
            "kb": str(getattr(kb, "location", "")) if kb is not None else None,
            "search": self.search.name if self.search else "none",
            "budget": self.budget.to_dict(),
        }

    # ------------------------------------------------------------------------------------
    def answer(self, question: str, *, history=None, max_new_tokens: int | None = None,
               on_token: Callable[[str], None] | None = None,
               on_progress: Callable[..., None] | None = None) -> Answer:
        run = _Run(self, question, on_progress)
        answer = run.go()
        if on_token is not None:
            on_token(answer.text)
        return answer


class _Run:
    def __init__(self, session: ResearchSession, question: str, on_progress) -> None:
        self.s, self.question, self.on_progress = session, question.strip(), on_progress
        self.budget = session.budget
        self.started = time.perf_counter()
        self.sources: list[Source] = []
        self.seen: set[str] = set()
        self.calls = 0
        self.pages = 0
        self.skipped: list[str] = []
        self.timings: dict[str, float] = {}
        self.queries: list[str] = []
        self.step = 0

    def progress(self, stage: str, **info: Any) -> None:
        self.step += 1
        if self.on_progress is not None:
            self.on_progress(self.step, None, step=stage, **info)

    def time_left(self) -> bool:
        return time.perf_counter() - self.started < self.budget.seconds

    def ask(self, step: str, system: str, user: str, schema: dict | None,
            check: Callable[[Any], Any], max_new_tokens: int = 200) -> Any:
        """One model step: a prompt, its output parsed and checked; retried once, then None
        (with the reason in `skipped`)."""
        reason = ""
        for _attempt in range(2):
            if self.calls >= self.budget.model_calls:
                self.skipped.append(f"{step}: budget spent ({self.calls} model calls)")
                raise _OutOfBudget
            if not self.time_left():
                self.skipped.append(f"{step}: time budget spent ({self.budget.seconds:g} s)")
                raise _OutOfBudget
            self.calls += 1
            began = time.perf_counter()
            try:
                generation = self.s.model.generate(
                    [{"role": "system", "content": system}, {"role": "user", "content": user}],
                    max_new_tokens=max_new_tokens, temperature=0.0, response_format=schema,
                )
            except Exception as error:  # noqa: BLE001 - a step that fails is skipped, named
                reason = f"{type(error).__name__}: {str(error)[:160]}"
                continue
            finally:
                self.timings[f"{step}_s"] = self.timings.get(f"{step}_s", 0.0) + (
                    time.perf_counter() - began)
            text = generation.text.strip()
            try:
                value = check(json.loads(text) if schema is not None else text)
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                reason = f"unusable output ({error})"
                continue
            return value
        self.skipped.append(f"{step}: skipped after 2 tries: {reason}")
        return None

    # --- the steps ---------------------------------------------------------------------
    def go(self) -> Answer:
        try:
            self.read_kb(self.question)
            self.progress("kb", sources=len(self.sources))
            queries = self.plan()
            for depth in range(self.budget.depth):
                if not queries:
                    break
                for query in queries[: self.budget.breadth]:
                    if query in self.queries:
                        continue
                    self.queries.append(query)
                    if depth:
                        self.read_kb(query)
                    self.read_web(query)
                self.note_all()
                if depth + 1 < self.budget.depth:
                    queries = self.follow_up()
        except _OutOfBudget:
            pass
        return self.write()

    def read_kb(self, query: str) -> None:
        if self.s.kb is None:
            return
        began = time.perf_counter()
        from infuse.rag import search_lock

        with search_lock(self.s.kb):
            hits = self.s.kb.search(query, k=self.budget.kb_k,
                                   min_similarity=self.s.min_similarity)
        for hit in hits:
            key = hit.chunk.chunk_id
            self.add(key, hit.chunk.source, "kb", hit.chunk.title, hit.chunk.text)
        self.timings["kb_s"] = self.timings.get("kb_s", 0.0) + time.perf_counter() - began

    def add(self, key: str, source: str, kind: str, title: str, text: str) -> None:
        if key in self.seen or not text.strip():
            return
        self.seen.add(key)
        self.sources.append(Source(len(self.sources) + 1, source, kind, title, text))

    def plan(self) -> list[str]:
        if self.s.search is None and self.budget.depth <= 1:
            return [self.question]
        n = self.budget.breadth

        def check(value: Any) -> list[str]:
            queries = [q.strip() for q in value["queries"] if isinstance(q, str) and q.strip()]
            if not queries:
                raise ValueError("no queries")
            return queries[:n]

        planned = self.ask(
            "plan",
            "You plan research. Reply with JSON: {\"queries\": [short web search queries]}.",
            f"Question: {self.question}\nWrite up to {n} short search queries that together "
            "answer the question.",
            _PLAN, check, max_new_tokens=120,
        )
        self.progress("plan", queries=planned or [])
        return [self.question, *[q for q in (planned or []) if q != self.question]][:n]

    def read_web(self, query: str) -> None:
        if self.s.search is None:
            return
        if self.pages >= self.budget.pages:
            self.skipped.append(f"search {query!r}: page budget spent ({self.budget.pages})")
            return
        began = time.perf_counter()
        try:
            results = self.s.search.search(query, n=self.budget.pages)
        except SearchError as error:
            self.skipped.append(str(error))
            return
        finally:
            self.timings["search_s"] = self.timings.get("search_s", 0.0) + (
                time.perf_counter() - began)
        from infuse.scrape.content import page_documents
        from infuse.scrape.fetch import Fetcher

        with Fetcher(self.s.fetch_config) as fetcher:
            for result in results:
                if result.url in self.seen:
                    continue
                if self.pages >= self.budget.pages or not self.time_left():
                    self.skipped.append(f"{result.url}: page budget spent")
                    break
                self.pages += 1
                began = time.perf_counter()
                fetched = fetcher.fetch(result.url)
                self.timings["fetch_s"] = self.timings.get("fetch_s", 0.0) + (
                    time.perf_counter() - began)
                if not fetched.ok:
                    self.skipped.append(
                        f"{result.url}: {fetched.skip_reason or f'status {fetched.status}'}")
                    self.seen.add(result.url)
                    continue
                documents, _page = page_documents(fetched)
                text = "\n\n".join(d.text for d in documents)
                title = documents[0].title if documents else result.title
                self.add(result.url, result.url, "web", title, text)
                self.progress("read", url=result.url, pages=self.pages)

    def note_all(self) -> None:
        question_words = content_words(self.question)
        for source in self.sources:
            if source.notes or getattr(source, "_noted", False):
                continue
            source._noted = True  # type: ignore[attr-defined]
            words = content_words(source.text)
            if question_words and len(question_words & words) / len(question_words) < MIN_OVERLAP:
                continue  # shares too little with the question to be worth a model call

            def check(value: Any, words=words) -> list[str]:
                facts = [f.strip() for f in value["facts"] if isinstance(f, str) and f.strip()]
                # a fact must come from the source: most of its words are in it
                return [f for f in facts if content_words(f)
                        and len(content_words(f) & words) / len(content_words(f)) >= 0.5]

            facts = self.ask(
                "note",
                "You take notes for research. Reply with JSON: {\"facts\": [facts from the "
                "source that help answer the question]}. Use [] when the source does not help.",
                f"Question: {self.question}\n\nSource:\n{source.text[:SOURCE_CHARS]}",
                _NOTE, check, max_new_tokens=200,
            )
            source.notes = facts or []
            self.progress("note", source=source.source, facts=len(source.notes))

    def follow_up(self) -> list[str]:
        notes = self.notes_text()
        if self.s.search is None and self.s.kb is None:
            return []

        def check(value: Any) -> list[str]:
            return [q.strip() for q in value["queries"] if isinstance(q, str) and q.strip()]

        queries = self.ask(
            "follow_up",
            "You check research for gaps. Reply with JSON: {\"queries\": [search queries for "
            "what is still unknown]}. Use [] when the notes answer the question.",
            f"Question: {self.question}\n\nNotes:\n{notes or '(none yet)'}",
            _PLAN, check, max_new_tokens=120,
        )
        self.progress("follow_up", queries=queries or [])
        return [q for q in (queries or []) if q not in self.queries][: self.budget.breadth]

    def noted(self) -> list[Source]:
        return [s for s in self.sources if s.notes]

    def notes_text(self) -> str:
        return "\n".join(f"[{s.number}] {fact}" for s in self.noted() for fact in s.notes)

    def write(self) -> Answer:
        noted = self.noted()
        text = ""
        if noted:
            try:
                text = self.ask(
                    "write",
                    "You write a short research report in Markdown from numbered notes. Cite the "
                    "note numbers in square brackets, like [1], after each sentence. Use only "
                    "the notes.",
                    f"Question: {self.question}\n\nNotes:\n{self.notes_text()}\n\nReport:",
                    None, lambda value: value if value.strip() else _raise("empty report"),
                    max_new_tokens=self.s.max_new_tokens,
                ) or ""
            except _OutOfBudget:
                text = ""
            if not text:  # the notes themselves, cited, are still a report
                text = "\n".join(f"- {fact} [{s.number}]" for s in noted for fact in s.notes)
        read = {s.number: s.text for s in self.sources}
        check = check_citations(text, read)
        no_answer = not noted or not check.cited
        report = f"# {self.question}\n\n"
        report += (NO_ANSWER + "\n") if no_answer else check.report.strip() + "\n"
        if check.flagged:
            report += "\n**Check these sentences:** their cited sources lack their key words:\n"
            report += "".join(f"- {f['sentence']}\n" for f in check.flagged)
        cited = [s for s in self.sources if s.number in check.cited]
        if cited:
            report += "\n## Sources\n\n" + "".join(
                f"[{s.number}] {s.title + ' — ' if s.title else ''}{s.source}\n" for s in cited)
        if self.skipped:
            report += "\n## Skipped\n\n" + "".join(f"- {why}\n" for why in self.skipped)
        if self.s.to_kb is not None:
            self.save_to_kb()
        self.timings["total_s"] = time.perf_counter() - self.started
        self.progress("done", citations=len(cited))
        return Answer(
            text=report,
            method=self.s.name,
            citations=[Citation(s.number, s.source, s.text[:SOURCE_CHARS],
                                metadata={"kind": s.kind, "title": s.title, "notes": s.notes})
                       for s in cited],
            timings=self.timings,
            no_answer=no_answer,
            facts={
                "dropped_citations": check.dropped,
                "flagged_sentences": check.flagged,
                "sources_read": [{"number": s.number, "source": s.source, "kind": s.kind}
                                 for s in self.sources],
                "queries": self.queries,
                "model_calls": self.calls,
                "pages_fetched": self.pages,
                "skipped": self.skipped,
                "budget": self.budget.to_dict(),
            },
        )

    def save_to_kb(self) -> None:
        from infuse.knowledge.documents import Document

        docs = [Document(text=s.text, source=s.source, title=s.title, doc_id=s.source)
                for s in self.sources if s.kind == "web"]
        if docs:
            self.s.to_kb.add_documents(docs)


def _raise(message: str):
    raise ValueError(message)





def research(question: str, *, model: Any = None, kb: Any = None, search: Any = None,
             budget: Budget | None = None, fetch_config: Any = None, to_kb: Any = None,
             on_progress: Callable[..., None] | None = None) -> Answer:
    """One question, one-shot. `model`: a ChatModel or a spec for `load_chat_model` (None:
    the packaged default); `kb`: a KnowledgeBase, its location, or None."""
    if model is None or isinstance(model, str):
        from infuse.llm import load_chat_model

        model = load_chat_model(*([model] if model else []))
    if kb is not None and not hasattr(kb, "search"):
        from infuse.knowledge.kb import KnowledgeBase

        kb = KnowledgeBase(kb)
    session = ResearchSession(model, kb=kb, search=search, budget=budget,
                              fetch_config=fetch_config, to_kb=to_kb)
    return session.answer(question, on_progress=on_progress)


def report_dict(answer: Answer) -> dict[str, Any]:
    """The JSON form of a research answer: report, citations, dropped_citations, timings, ..."""
    payload = answer.to_dict()
    facts = payload.pop("facts")
    return {
        "report": payload.pop("answer"),
        "citations": payload["citations"],
        "dropped_citations": facts.get("dropped_citations", []),
        "flagged_sentences": facts.get("flagged_sentences", []),
        "no_answer": payload["no_answer"],
        "timings": payload["timings"],
        "facts": facts,
    }
