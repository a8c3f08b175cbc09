"""Answer methods: each a long-lived session, opened once, asked many times, safe to share
between threads. eval and serve build their methods here and hold no method logic of their own.

    method.answer(question, history=[...], max_new_tokens=None, on_token=None) -> Answer
    method.stream(question, ...) -> text pieces, then the final Answer
    method.close()

    RagSession(kb, model)          retrieval + generation with [n] citations   (infuse.rag)
    CagMethod(CagSession...)       the whole knowledge in the KV cache          (infuse.cag)
    ModelMethod(name, model)       a chat model alone: the base model or a LoRA adapter
    build_methods(names, MethodOptions(...)) -> (methods, skipped)
        the standard five (base, rag, cag, lora, lora+rag) from CLI-like options, opened lazily

A knowledge too long for the context is `infuse.errors.ContextTooLongError`; a method that
cannot run here is a `SkippedMethod` with its reason.
"""

from infuse.methods.base import (
    DEFAULT_SYSTEM_PROMPT,
    DOES_NOT_FIT,
    FAILED,
    MISSING,
    AnswerMethod,
    LazyMethod,
    ModelMethod,
    SkipMethod,
    SkippedMethod,
)
from infuse.methods.build import (
    DEFAULT_METHODS,
    METHOD_NAMES,
    MethodOptions,
    build_methods,
    knowledge_files,
    open_knowledge_base,
)
from infuse.methods.cag import CagMethod
from infuse.rag import RagSession

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_SYSTEM_PROMPT",
    "DOES_NOT_FIT",
    "FAILED",
    "METHOD_NAMES",
    "MISSING",
    "AnswerMethod",
    "CagMethod",
    "LazyMethod",
    "MethodOptions",
    "ModelMethod",
    "RagSession",
    "SkipMethod",
    "SkippedMethod",
    "build_methods",
    "knowledge_files",
    "open_knowledge_base",
]
