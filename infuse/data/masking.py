"""Chat-templated token ids with train-on-responses-only labels.

Labels are -100 everywhere except the assistant turns' text and their end-of-turn token(s).
Where those sit is read off the template itself, per conversation: the conversation is
rendered once as it is and once with each assistant text replaced by a unique sentinel; the
sentinel rendering splits into the template's own text around the assistant turns, which
locates every assistant turn in the real rendering (whatever the template trims, moves or
prefixes). Character spans become token spans through the fast tokenizer's offsets. Nothing is
hard-coded per template; the end-of-turn text is what the template prints after an assistant
turn whether or not another turn follows (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, eos).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from os.path import commonprefix
from typing import Any

from infuse.data.templates import compile_template, require_template, template_variables
from infuse.errors import DataError, TemplateError

IGNORE_INDEX = -100
_SENTINEL = re.compile("\ue000(\\d+)\ue001")
_CHUNK_ROWS = 1024
_OPEN, _CLOSE = "\ue002", "\ue003"
_MARKER = re.compile("[\ue002\ue003]")


def _sentinel(index: int) -> str:
    return f"\ue000{index}\ue001"


@dataclass
class EncodedConversation:
    """One conversation as token ids, with labels (-100 where not trained)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        """How many positions carry a label (are trained on)."""
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    @property
    def fully_masked(self) -> bool:
        """True when nothing is trained (no assistant turn, or truncation cut them all)."""
        return self.trained_tokens == 0


@dataclass(frozen=True)
class TemplateProfile:
    """What masking needs to know about one template (computed once per template text)."""

    text: str
    variables: tuple[tuple[str, str], ...]
    end_of_turn: str
    markers_ok: bool = False

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
        """Render with the compiled template and the tokenizer's variables (bos_token, ...)."""
        return compile_template(self.text).render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            tools=None,
            documents=None,
            **dict(self.variables),
        )


@lru_cache(maxsize=32)
def _profile(text: str, variables: tuple[tuple[str, str], ...]) -> TemplateProfile:
    probe = TemplateProfile(text, variables, "")
    one = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": _sentinel(0)}]
    two = one + [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": _sentinel(1)}]
    try:
        after_last = probe.render(one).split(_sentinel(0), 1)[1]
        after_middle = probe.render(two).split(_sentinel(0), 1)[1]
    except Exception:  # a template that needs something else (a system turn, ...): no end text
        return probe
    profile = TemplateProfile(text, variables, _end_of_turn(after_last, after_middle))
    return TemplateProfile(text, variables, profile.end_of_turn, _markers_agree(profile))


def _markers_agree(profile: TemplateProfile) -> bool:
    """Whether wrapping answers in markers and removing them afterwards renders the same text."""
    probes = [
        [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello there."}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A 2"},
        ],
    ]
    try:
        for messages in probes:
            plain = profile.render(messages)
            marked = _marked_render(profile, messages)
            if marked is None or marked[0] != plain:
                return False
    except Exception:
        return False
    return True


def _marked_render(
    profile: TemplateProfile, messages: list[dict[str, Any]]
) -> tuple[str, list[tuple[int, int]]] | None:
    """One render with every answer wrapped in markers: (text without markers, answer spans).

    None when the markers do not come back as one open/close pair per answer, in order.
    """
    wrapped = [
        dict(m, content=_OPEN + m["content"] + _CLOSE) if m["role"] == "assistant" else m
        for m in messages
    ]
    rendered = profile.render(wrapped)
    pieces, spans, length, expected = [], [], 0, _OPEN
    start = 0
    for match in _MARKER.finditer(rendered):
        if match.group() != expected:
            return None
        pieces.append(rendered[start : match.start()])
        length += match.start() - start
        start = match.end()
        if expected == _OPEN:
            opened, expected = length, _CLOSE
        else:
            spans.append((opened, length))
            expected = _OPEN
    if expected != _OPEN:
        return None
    pieces.append(rendered[start:])
    return "".join(pieces), spans


def _end_of_turn(after_last: str, after_middle: str) -> str:
    """What a template prints after an answer whether or not another turn follows.

    The common prefix of both, cut back to a whitespace boundary when it stops inside a piece
    that then differs (Phi-3.5: `<|end|>\\n` + eos vs `<|end|>\\n<|user|>`), whitespace trimmed.
    """
    common = commonprefix([after_last, after_middle])
    if common not in (after_last, after_middle):
        boundary = max((i for i, char in enumerate(common) if char.isspace()), default=0)
        common = common[:boundary]
    return common.rstrip()


def template_profile(tokenizer: Any) -> TemplateProfile:
    """The masking profile of the tokenizer's chat template (raises TemplateError if it has none)."""
    return _profile(
        require_template(tokenizer), tuple(sorted(template_variables(tokenizer).items()))
    )


def _clean(messages: Sequence[dict[str, Any]], row: int) -> list[dict[str, Any]]:
    """Drop None-valued keys (as transformers does) and check the role/content shape."""
    cleaned = []
    for turn in messages:
        if not isinstance(turn, dict) or "role" not in turn:
            raise DataError(
                f"Conversation {row}: turn {turn!r} has no 'role'. Conversations must be lists of "
                "{'role', 'content'} turns; convert ShareGPT data with standardize_sharegpt first."
            )
        cleaned.append({key: value for key, value in turn.items() if value is not None})
    return cleaned


def _assistant_char_spans(
    profile: TemplateProfile, messages: list[dict[str, Any]], text: str, row: int
) -> list[tuple[int, int]]:
    """Character spans of the assistant texts (+ end-of-turn text) inside `text`, the rendering."""
    answers = {i: m.get("content", "") for i, m in enumerate(messages) if m["role"] == "assistant"}
    if not answers:
        return []
    marked = [dict(m, content=_sentinel(i)) if i in answers else m for i, m in enumerate(messages)]
    pieces = _SENTINEL.split(profile.render(marked))
    frames, order = pieces[0::2], [int(index) for index in pieces[1::2]]
    if not text.startswith(frames[0]):
        raise _unmappable(row)
    spans, position = [], len(frames[0])
    for number, index in enumerate(order):
        after, last = frames[number + 1], number == len(order) - 1
        end = _answer_end(text, position, str(answers[index]), after, last)
        if end is None:
            raise _unmappable(row)
        closing = (
            end + len(profile.end_of_turn) if text.startswith(profile.end_of_turn, end) else end
        )
        spans.append((position, closing))
        position = end + len(after)
    return spans


def _render_with_spans(
    profile: TemplateProfile, messages: list[dict[str, Any]], row: int, responses_only: bool
) -> tuple[str, list[tuple[int, int]]]:
    """The rendering and its trained character spans (one render when markers are safe)."""
    if not responses_only:
        return profile.render(messages), []
    answers = [m.get("content") for m in messages if m["role"] == "assistant"]
    if profile.markers_ok and all(
        isinstance(a, str) and a and a == a.strip() and not _MARKER.search(a) for a in answers
    ):
        marked = _marked_render(profile, messages)
        if marked is not None and len(marked[1]) == len(answers):
            text, spans = marked
            eot = profile.end_of_turn
            return text, [(s, e + len(eot) if text.startswith(eot, e) else e) for s, e in spans]
    text = profile.render(messages)
    return text, _assistant_char_spans(profile, messages, text, row)


@dataclass
class _Shape:
    """A template rendered once per role sequence with every content a sentinel: the literal
    text between contents (`frames`) and which message goes where (`order`). Filling the
    frames with the real contents renders any conversation of that shape without jinja."""

    frames: list[str]
    order: list[int]
    checked_rows: int = 0
    usable: bool = True


_CHECK_EVERY = 97  # re-verify a shape against the real template on every 97th row


def _plain_content(content: Any) -> bool:
    return (
        isinstance(content, str)
        and content != ""
        and content == content.strip()
        and "\ue000" not in content
        and "\ue001" not in content
    )


def _shape_for(profile: TemplateProfile, messages: list[dict[str, Any]]) -> _Shape | None:
    marked = [dict(m, content=_sentinel(i)) for i, m in enumerate(messages)]
    try:
        pieces = _SENTINEL.split(profile.render(marked))
    except Exception:
        return None
    order = [int(index) for index in pieces[1::2]]
    if sorted(order) != list(range(len(messages))):
        return None  # a content printed twice or not at all: not a plain insertion
    return _Shape(frames=pieces[0::2], order=order)


def _fast_render(
    profile: TemplateProfile,
    shapes: dict[tuple, _Shape | None],
    messages: list[dict[str, Any]],
) -> tuple[str, list[tuple[int, int]]] | None:
    """Render by filling a cached shape; None when this conversation needs the template."""
    if len(messages) == 0 or any(set(m) - {"role", "content"} for m in messages):
        return None
    if not all(_plain_content(m.get("content")) for m in messages):
        return None
    key = tuple(m["role"] for m in messages)
    if key not in shapes:
        shapes[key] = _shape_for(profile, messages)
    shape = shapes[key]
    if shape is None or not shape.usable:
        return None
    parts = [shape.frames[0]]
    spans: list[tuple[int, int]] = []
    position = len(shape.frames[0])
    eot = profile.end_of_turn
    for number, index in enumerate(shape.order):
        content = messages[index]["content"]
        frame = shape.frames[number + 1]
        if messages[index]["role"] == "assistant":
            end = position + len(content)
            spans.append((position, end + len(eot) if frame.startswith(eot) else end))
        parts.append(content)
        parts.append(frame)
        position += len(content) + len(frame)
    text = "".join(parts)
    if shape.checked_rows % _CHECK_EVERY == 0 and text != profile.render(messages):
        shape.usable = False  # content-dependent template logic: always use the template
        return None
    shape.checked_rows += 1
    return text, spans


def _answer_end(text: str, start: int, answer: str, after: str, last: bool) -> int | None:
    """Where the rendered answer that begins at `start` ends, given the template text after it."""
    for candidate in dict.fromkeys((answer, answer.strip(), answer.lstrip(), answer.rstrip())):
        end = start + len(candidate)
        if text.startswith(candidate, start) and (
            text[end:] == after if last else text.startswith(after, end)
        ):
            return end
    if last:
        end = len(text) - len(after)
        return end if end >= start and text.endswith(after) else None
    found = text.find(after, start)
    return None if found < 0 else found


def _unmappable(row: int) -> TemplateError:
    return TemplateError(
        f"Conversation {row}: the chat template changes the assistant text in a way infuse cannot "
        "map back to tokens (e.g. it rewrites or drops answers). Use a built-in template "
        "(--chat-template NAME) or train on whole conversations (train_on_responses_only=False)."
    )


def _plain_backend(tokenizer: Any):
    """The Rust tokenizer, with no truncation/padding left switched on by earlier calls."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TemplateError(
            f"{type(tokenizer).__name__} is a slow tokenizer; masking needs a fast one "
            "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))."
        )
    if backend.truncation is None and backend.padding is None:
        return backend
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def _labels(encoding: Any, spans: list[tuple[int, int]]) -> list[int]:
    """-100 except the tokens that overlap a character span, which get their own id."""
    ids = encoding.ids
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        first = next(
            (t for c in range(start, end) if (t := encoding.char_to_token(c)) is not None), None
        )
        if first is None:
            continue
        last = next(
            t for c in range(end - 1, start - 1, -1) if (t := encoding.char_to_token(c)) is not None
        )
        labels[first : last + 1] = ids[first : last + 1]
    return labels


def encode_conversations(
    tokenizer: Any,
    conversations: Iterable[Sequence[dict[str, Any]]],
    *,
    max_seq_len: int | None = None,
    train_on_responses_only: bool = True,
    first_row: int = 0,
) -> dict[str, list]:
    """Render and tokenise many conversations at once: `{"input_ids": [...], "labels": [...]}`.

    Uses the compiled template and batch tokenisation (no per-row apply_chat_template).
    `first_row` only numbers rows in error messages (for use inside `Dataset.map`).
    Raises TemplateError (no template, or one whose answers cannot be located), DataError.
    """
    profile = template_profile(tokenizer)
    backend = _plain_backend(tokenizer)
    result: dict[str, list] = {"input_ids": [], "labels": []}
    batch_texts: list[str] = []
    batch_spans: list[list[tuple[int, int]]] = []

    def flush() -> None:
        for encoding, spans in zip(
            backend.encode_batch(batch_texts, add_special_tokens=False), batch_spans
        ):
            ids = encoding.ids
            labels = _labels(encoding, spans) if train_on_responses_only else list(ids)
            if max_seq_len is not None:
                ids, labels = ids[:max_seq_len], labels[:max_seq_len]
            result["input_ids"].append(ids)
            result["labels"].append(labels)
        batch_texts.clear()
        batch_spans.clear()

    shapes: dict[tuple, _Shape | None] = {}
    for row, conversation in enumerate(conversations, start=first_row):
        messages = _clean(conversation, row)
        try:
            fast = _fast_render(profile, shapes, messages)
            if fast is not None:
                text, spans = fast
            else:
                text, spans = _render_with_spans(profile, messages, row, train_on_responses_only)
        except TemplateError:
            raise
        except Exception as error:
            raise TemplateError(
                f"Conversation {row}: the chat template refused it: {error}"
            ) from error
        batch_texts.append(text)
        batch_spans.append(spans)
        if len(batch_texts) >= _CHUNK_ROWS:
            flush()
    if batch_texts:
        flush()
    return result


def encode_conversation(
    tokenizer: Any,
    messages: Sequence[dict[str, Any]],
    *,
    max_seq_len: int | None = None,
    train_on_responses_only: bool = True,
) -> EncodedConversation:
    """One conversation as token ids and labels; `truncated` says max_seq_len cut it."""
    full = encode_conversations(
        tokenizer, [messages], train_on_responses_only=train_on_responses_only
    )
    ids, labels = full["input_ids"][0], full["labels"][0]
    truncated = max_seq_len is not None and len(ids) > max_seq_len
    if truncated:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return EncodedConversation(ids, labels, truncated)


@dataclass(frozen=True)
class MaskSummary:
    """How much of a dataset's labels is trained on."""

    rows: int
    tokens: int
    trained_tokens: int
    fully_masked_rows: int

    @property
    def masked_share(self) -> float:
        """Share of label positions that are -100 (0.0 for no tokens)."""
        return 0.0 if self.tokens == 0 else 1 - self.trained_tokens / self.tokens


def summarize_labels(labels: Iterable[Sequence[int]]) -> MaskSummary:
    """Count rows, tokens, trained tokens and fully masked rows over a labels column."""
    rows = tokens = trained = fully_masked = 0
    for row in labels:
        kept = sum(1 for label in row if label != IGNORE_INDEX)
        rows, tokens, trained = rows + 1, tokens + len(row), trained + kept
        fully_masked += kept == 0
    return MaskSummary(rows, tokens, trained, fully_masked)


def masked_share(labels: Iterable[Sequence[int]] | Sequence[int]) -> float:
    """Share of label positions that are -100: one row (list of ints) or many (list of lists).

    Near 1.0 means almost nothing is trained (wrong template parts, or answers truncated away).
    """
    rows = list(labels)
    if rows and isinstance(rows[0], int):
        rows = [rows]
    return summarize_labels(rows).masked_share

