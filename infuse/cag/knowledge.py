"""The knowledge prefix: files -> one system turn -> the exact tokens every question continues.

The prefix is whatever the chat template renders before the question. It is found by rendering
the conversation with two different questions and keeping what they share, so it works for
templates that put the system text in its own turn (chatml, Llama 3) and for those that fold it
into the first user turn (Gemma).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from infuse.errors import ConfigError, DataError, TemplateError
from infuse.llm.local import encode_rendered, render_messages

DEFAULT_INSTRUCTIONS = (
    "You are a helpful assistant. Answer the user's question using the knowledge below. "
    "If the knowledge does not contain the answer, say that you don't know."
)

# Two probe questions that differ in their first character: the renders agree up to the question.
_PROBES = ("A?", "B?")


def knowledge_files_from_kb(location: str | Path) -> list[Path]:
    """The source files of a knowledge base's documents (one per file, in `kb list` order).

    Sources that are not files here (URLs, texts, files since deleted) are left out. Raises
    ConfigError when no document's file exists.
    """
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.reading import find_files

    kb = KnowledgeBase(location)
    try:
        sources = [record.source for record in kb.documents()]
    finally:
        kb.close()
    files, _gone = find_files([source for source in dict.fromkeys(sources) if Path(source).is_file()])
    if not files:
        raise ConfigError(
            f"The knowledge base {location} has no documents whose files exist here; "
            "add some with `infuse kb add` or pass the files to `infuse cag build`."
        )
    return files


def knowledge_files(paths: list[Path | str]) -> list[Path]:
    """Files and folders -> the files the knowledge base would read (`find_files`), so a cache
    records files it can check later. Raises DataError naming a path that does not exist."""
    from infuse.knowledge.reading import find_files

    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"Knowledge file {path} does not exist (or is not a file).")
    return find_files(paths)[0]


def read_knowledge_files(paths: list[Path | str]) -> list[tuple[str, str]]:
    """Read knowledge files and folders as (file name, text) pairs, one per file, through the
    knowledge base's reader (`infuse.knowledge.read_paths`: text, Markdown, HTML, PDF, DOCX,
    rows, man pages ...). Empty files are left out (they add nothing to the cache).

    Raises DataError naming a path that does not exist or a file that cannot be read (the
    cache must hold exactly the knowledge asked for).
    """
    from infuse.knowledge.reading import read_paths

    if not paths:
        raise ConfigError("No knowledge files given: pass one or more files or folders.")
    for path in map(Path, paths):
        if not path.exists():
            raise DataError(f"Knowledge file {path} does not exist (or is not a file).")
    result = read_paths(paths)
    failed = [
        item for item in result.skipped
        if "empty file" not in item["reason"] and "no text found" not in item["reason"]
    ]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise DataError(
            f"Knowledge file {failed[0]['reason']}{more} Remove it from the knowledge or convert it."
        )
    texts: dict[str, list[str]] = {}
    for document in result.documents:
        texts.setdefault(document.source, []).append(document.text.strip())
    documents = [(Path(source).name, "\n\n".join(parts)) for source, parts in texts.items()]
    if not documents:
        raise DataError(f"The knowledge files {', '.join(map(str, paths))} are all empty.")
    return documents


def knowledge_text(documents: list[tuple[str, str]]) -> str:
    """Join documents into one text, each under a heading naming its source."""
    return "\n\n".join(f"## {name}\n\n{text}" for name, text in documents)


def system_message(knowledge: str, instructions: str = DEFAULT_INSTRUCTIONS) -> str:
    """The system turn CAG puts in front of every question."""
    return f"{instructions}\n\n# Knowledge\n\n{knowledge}"


def sha256_text(text: str) -> str:
    """Hex sha256 of a text (utf-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class KnowledgePrefix:
    """The rendered text and tokens before the question, and how to continue them with one."""

    system: str
    text: str
    token_ids: list[int]

    def question_ids(
        self, tokenizer, question: str, history: list[dict[str, str]] | None = None
    ) -> list[int]:
        """Tokens that follow the prefix for `question` (after the earlier turns in `history`),
        up to the assistant's turn."""
        full = render_messages(tokenizer, _conversation(self.system, question, history))
        if not full.startswith(self.text):
            raise TemplateError(
                "The chat template renders the knowledge differently depending on the question, so "
                "no cache can be reused; use RAG with this model."
            )
        return encode_rendered(tokenizer, full[len(self.text) :])

    def full_prompt_ids(self, tokenizer, question: str) -> list[int]:
        """The whole prompt (prefix + question) as one sequence, what a run without cache feeds."""
        return self.token_ids + self.question_ids(tokenizer, question)


def build_prefix(tokenizer, system: str) -> KnowledgePrefix:
    """Render `system` with the tokenizer's chat template and cut it where questions begin."""
    first, second = (render_messages(tokenizer, _conversation(system, probe)) for probe in _PROBES)
    length = 0
    for a, b in zip(first, second):
        if a != b:
            break
        length += 1
    text = first[:length]
    if system not in text:
        raise TemplateError(
            "The chat template does not put the knowledge before the question, so it cannot be "
            "cached; use RAG with this model or give it a template with a system turn."
        )
    return KnowledgePrefix(system=system, text=text, token_ids=encode_rendered(tokenizer, text))


def _conversation(
    system: str, question: str, history: list[dict[str, str]] | None = None
) -> list[dict[str, str]]:
    # Earlier system turns would land after the knowledge; the knowledge turn is the system turn.
    turns = [turn for turn in history or () if turn["role"] != "system"]
    return [
        {"role": "system", "content": system},
        *turns,
        {"role": "user", "content": question},
    ]
