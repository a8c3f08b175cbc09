"""`CagMethod`: a CAG session (local KV cache, or a server's prefix cache) as an answer method.

The session does the work (`infuse.cag`); this adds the method's name, its facts (knowledge
tokens, context window), its default answer length, and grounding: the whole knowledge is the
one passage, so a question whose key terms the knowledge never mentions is declined before the
model is asked, and an answer whose key content (numbers, names, content words) is not in the
knowledge is replaced by a decline (`infuse.rag.grounding_problem`; small models neither decline
nor stay inside the knowledge when told to).
"""

from __future__ import annotations

from typing import Any

from infuse.answer import Answer, AnswerMethod, AnswerOptions


class CagMethod(AnswerMethod):
    """`session` is a `CagSession` (its cache is locked per question, so threads may share it)
    or a `ServerCagSession`."""

    def __init__(
        self,
        session: Any,
        *,
        name: str = "cag",
        max_new_tokens: int = 256,
        facts: dict[str, Any] | None = None,
        grounded: bool = True,
    ) -> None:
        self.name = name
        self.grounded = grounded
        self.session = session
        self.max_new_tokens = max_new_tokens
        chat = getattr(session, "chat", None)
        self.facts: dict[str, Any] = {"model": getattr(chat, "name", "")}
        if hasattr(session, "knowledge_tokens"):
            self.facts["knowledge_tokens"] = session.knowledge_tokens
            self.facts["context_window"] = getattr(chat, "context_window", None)
        self.facts.update(facts or {})

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """Answer from the cached knowledge (see `CagSession.answer`); with grounding, declined
        (`no_answer`, the reason in `facts["declined_because"]`) when the evidence is weak."""
        from infuse.rag import NO_ANSWER, extract_answer, grounding_problem, missing_question_terms

        knowledge = self.knowledge_text() if self.grounded else None
        if knowledge:
            missing = missing_question_terms(question, [knowledge])
            if missing:
                if options.on_token is not None:
                    options.on_token(NO_ANSWER)
                return Answer(
                    text=NO_ANSWER,
                    method=self.name,
                    no_answer=True,
                    facts={
                        "declined_because": f"the knowledge does not speak of: {', '.join(missing)}"
                    },
                    timings={"total_s": 0.0},
                )
        # With grounding the reply is checked first, then streamed as one piece.
        max_new_tokens = options.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = self.max_new_tokens
        result = self.session.answer(
            question,
            **options.keywords(
                max_new_tokens=max_new_tokens, on_token=None if knowledge else options.on_token
            ),
        )
        result.method = self.name
        if knowledge and not result.no_answer:
            raw = result.text
            result.text = extract_answer(raw)
            result.facts["raw_answer"] = raw
            problem = grounding_problem(result.text, question, [knowledge])
            if problem is not None:
                result.text, result.no_answer = NO_ANSWER, True
                result.facts["declined_because"] = f"the answer is not grounded: {problem}"
        if knowledge and options.on_token is not None:
            options.on_token(result.text)
        return result

    def knowledge_text(self) -> str | None:
        """The knowledge the session answers from (None when the session does not say)."""
        prefix = getattr(self.session, "prefix", None)
        text = getattr(prefix, "system", None) or getattr(self.session, "system", None)
        return text if isinstance(text, str) else None

    def close(self) -> None:
        """Nothing to release: the cache goes with the session, the model may be shared."""
