"""Keeping CAG true to the knowledge base while serving.

RAG reads the knowledge base on every question, so a document added by another process
(`infuse kb add`) is found at once. CAG's cache holds the knowledge as it was when it was built:
`FreshCag` watches the knowledge base's documents (ids and content hashes, every few seconds);
when they change it marks the cache stale - questions to it are then refused with a clear
"being rebuilt" error rather than answered from old knowledge - rebuilds it in the background
and swaps the new one in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.answer import AnswerMethod
from infuse.errors import CacheError

WATCH_INTERVAL_S = 2.0


class CacheRebuildingError(CacheError):
    """The knowledge changed; the CAG cache is being rebuilt and the old one is not used."""


def knowledge_fingerprint(kb: Any) -> tuple[tuple[str, str], ...]:
    """What CAG's cache depends on: every document's id and content hash."""
    return tuple(sorted((record.doc_id, record.doc_hash) for record in kb.documents()))


def knowledge_files(kb: Any) -> list[Path]:
    """The knowledge base's sources that are files on this machine, in a stable order."""
    sources = {record.source for record in kb.documents()}
    return sorted(Path(source) for source in sources if "://" not in source and Path(source).is_file())


class FreshCag(AnswerMethod):
    """A CAG method that is rebuilt when the knowledge base changes (an AnswerMethod itself).

    `build(files) -> method` makes a CAG method over `files` (ContextTooLongError when they no
    longer fit); `schedule(job_fn)` runs the rebuild where the model's generations run, so the
    rebuild never competes with an answer for the model.
    """

    name = "cag"

    def __init__(self, kb: Any, build: Callable[[list[Path]], Any], *, interval_s: float = WATCH_INTERVAL_S):
        self.kb = kb
        self._build = build
        self.interval_s = interval_s
        self.schedule: Callable[[Callable[[], None]], None] = lambda work: work()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.fingerprint = knowledge_fingerprint(kb)
        self.method = build(knowledge_files(kb))
        self.facts: dict[str, Any] = dict(getattr(self.method, "facts", {}))
        self.stale_since: float | None = None
        self.rebuilds = 0
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def stale(self) -> bool:
        return self.stale_since is not None

    def watch(self) -> None:
        """Start looking for knowledge changes on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="infuse-cag-watch", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as error:  # noqa: BLE001 - a store hiccup must not kill the watcher
                self.last_error = f"{type(error).__name__}: {error}"

    def check(self) -> bool:
        """Compare the knowledge with the cache's; on a change mark stale and schedule a rebuild.
        Returns True when a rebuild was scheduled."""
        current = knowledge_fingerprint(self.kb)
        with self._lock:
            if current == self.fingerprint or self.stale:
                return False
            self.stale_since = time.time()
        self.schedule(lambda: self._rebuild(current))
        return True

    def _rebuild(self, fingerprint) -> None:
        try:
            method = self._build(knowledge_files(self.kb))
        except Exception as error:  # noqa: BLE001 - reported to every question until fixed
            self.last_error = f"{type(error).__name__}: {error}"
            with self._lock:
                self.fingerprint = fingerprint  # retry only when the knowledge changes again
            return
        with self._lock:
            self.method, self.fingerprint = method, fingerprint
            self.facts.clear()
            self.facts.update(getattr(method, "facts", {}))
            self.stale_since, self.last_error = None, None
            self.rebuilds += 1
        # the watcher may have seen further changes while this was building
        self.check()

    def answer(self, question: str, **options: Any):
        with self._lock:
            stale, method, error = self.stale, self.method, self.last_error
        if stale:
            raise CacheRebuildingError(
                "The knowledge changed; the CAG cache is being rebuilt and the old one is not used. "
                "Ask again in a few seconds, or ask infuse-rag."
            )
        if error is not None and method is None:
            raise CacheError(f"The CAG cache could not be rebuilt: {error}")
        result = method.answer(question, **options)
        result.method = self.name
        return result

    def close(self) -> None:
        self._stop.set()
        if self.method is not None:
            self.method.close()
