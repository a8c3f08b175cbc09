"""CAG through an OpenAI-compatible server: the same knowledge prefix, byte for byte, every time.

Servers keep the KV cache of prompts they have seen (vLLM automatic prefix caching, llama.cpp
slots, providers' context caching). Sending the identical system turn first in every request
lets that cache serve the knowledge; only the question is computed. Servers that say how many
prompt tokens came from their cache (`usage.prompt_tokens_details.cached_tokens`) have it
reported in `Answer.facts["cached_tokens"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from infuse.answer import Answer, AnswerMethod, AnswerOptions
from infuse.cag.knowledge import (
    DEFAULT_INSTRUCTIONS,
    knowledge_text,
    read_knowledge_files,
    system_message,
)
from infuse.cag.store import Manifest
from infuse.conversation import check_history
from infuse.llm.openai_compat import OpenAIChatModel


class ServerCagSession(AnswerMethod):
    """Questions to a served model, each behind the same knowledge system turn."""

    def __init__(self, chat: OpenAIChatModel, system: str) -> None:
        self.chat = chat
        self.system = system

    @classmethod
    def from_files(
        cls,
        files: list[Path | str],
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        instructions: str = DEFAULT_INSTRUCTIONS,
    ) -> ServerCagSession:
        """A session whose knowledge comes straight from text/markdown files."""
        system = system_message(knowledge_text(read_knowledge_files(list(files))), instructions)
        return cls(OpenAIChatModel(base_url, model, api_key=api_key), system)

    @classmethod
    def open(
        cls,
        cache_dir: Path | str,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
    ) -> ServerCagSession:
        """A session with the knowledge turn a local cache was built from (its manifest's text)."""
        manifest = Manifest.read(Path(cache_dir))
        return cls(
            OpenAIChatModel(base_url, model or manifest.model, api_key=api_key), manifest.system
        )

    def warm(self) -> None:
        """Send the knowledge once (one answer token) so the server's prefix cache holds it."""
        self.chat.generate(self._messages("Reply with OK."), max_new_tokens=1)

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """Answer through the server; facts carry the server's cached-token count.
        Thread-safe (the HTTP client is)."""
        generation = self.chat.generate(
            self._messages(question, options.history), **options.generate_keywords()
        )
        timings = {"total_s": generation.total_s}
        if generation.time_to_first_token_s is not None:
            timings["time_to_first_token_s"] = generation.time_to_first_token_s
        facts = {
            "server": self.chat.url,
            "model": self.chat.name,
            "prompt_tokens": generation.prompt_tokens,
            "answer_tokens": generation.completion_tokens,
            "cached_tokens": generation.cached_tokens,
            "cache_loaded_from_disk": False,
        }
        return Answer(text=generation.text, method="cag", timings=timings, facts=facts)

    def _messages(
        self, question: str, history: Sequence[dict[str, str]] | None = None
    ) -> list[dict[str, str]]:
        turns = [turn for turn in check_history(history) if turn["role"] != "system"]
        return [
            {"role": "system", "content": self.system},
            *turns,
            {"role": "user", "content": question},
        ]
