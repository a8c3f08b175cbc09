"""Generation: one interface over local transformers models and OpenAI-compatible servers.

load_chat_model(spec, base_url=..., adapter=...) -> ChatModel
ChatModel.generate(messages, max_new_tokens=, temperature=, stop=, on_token=) -> Generation
"""

from infuse.llm.base import ChatModel, Generation, Message
from infuse.llm.loading import load_chat_model

__all__ = ["ChatModel", "Generation", "Message", "load_chat_model"]
