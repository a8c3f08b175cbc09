"""Generation: one interface over local models (transformers, llama.cpp) and OpenAI-compatible servers.

load_chat_model(spec, base_url=..., adapter=..., backend="auto") -> ChatModel
ChatModel.generate(messages, max_new_tokens=, temperature=, stop=, on_token=,
                   response_format=<JSON Schema dict>) -> Generation

Every backend stops an answer that starts repeating itself, checks the prompt against the
context window before generating, and returns schema-valid JSON when given a response_format.
"""

from infuse.llm.base import ChatModel, Generation, Message
from infuse.llm.loading import load_chat_model

__all__ = ["ChatModel", "Generation", "Message", "load_chat_model"]
