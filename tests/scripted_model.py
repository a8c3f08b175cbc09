"""`ScriptedModel`: a ChatModel that answers every prompt with one fixed reply.

The stand-in for a hosted chat API (the one place fakes are allowed) in tests of what is built
on a model: RAG prompts and citations, grounding, judges.
"""

from __future__ import annotations

from infuse.llm.base import ChatModel, GenerateOptions, Generation, Message


class ScriptedModel(ChatModel):
    """Replies `reply` to every prompt (streamed as one piece when asked) and keeps the
    messages it was sent in `calls`."""

    def __init__(self, reply: str, *, name: str = "scripted") -> None:
        self.reply = reply
        self.name = name
        self.calls: list[list[Message]] = []

    def generate_with(self, messages: list[Message], options: GenerateOptions) -> Generation:
        self.calls.append(messages)
        if options.on_token is not None:
            options.on_token(self.reply)
        return Generation(text=self.reply, total_s=0.01, time_to_first_token_s=0.005)
