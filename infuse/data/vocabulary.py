"""Does a chat template fit the tokenizer? Its special tokens must be tokens of the vocabulary.

A template written for another model family (llama-3.1's `<|start_header_id|>` on a ChatML
model) still renders, but each of its markers becomes several ordinary tokens the model never
saw as one: training and chat then work on prompts unlike anything it knows.
"""

from __future__ import annotations

import re

# Literal marker tokens as chat templates spell them: <|im_start|>, <|eot_id|>, <start_of_turn>.
_MARKER = re.compile(r"<\|[^|\s<>'\"{}]{1,40}\|>|<(?:start|end)_of_turn>")


def template_markers(template: str) -> list[str]:
    """The special-token markers a template writes literally, in first-seen order."""
    return list(dict.fromkeys(_MARKER.findall(template)))


def missing_special_tokens(tokenizer, template: str) -> list[str]:
    """Markers of `template` that are not single tokens of `tokenizer`'s vocabulary."""
    vocab = tokenizer.get_vocab()
    return [marker for marker in template_markers(template) if marker not in vocab]


def missing_tokens_message(missing: list[str], template_name: str | None) -> str:
    named = f"The chat template '{template_name}'" if template_name else "The model's chat template"
    return (f"{named} uses special tokens the tokenizer does not have: {', '.join(missing)}. They are "
            "split into ordinary pieces the model never learned as markers; unless this template is "
            "meant as plain text, use the model's own template (leave out --chat-template) or one "
            "written for this model family.")
