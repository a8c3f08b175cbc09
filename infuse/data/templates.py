"""Chat templates: built-in formats by name, set on a tokenizer, detected, and rendered.

Built-in names (see /work/shared/CHAT_TEMPLATES.md). The first group reproduces each model's
own template character for character; the second renders exactly as Unsloth's
`get_chat_template` does for that name, so Unsloth code ports by changing the import:

    llama-3.1     meta-llama/Llama-3.1-8B-Instruct   (aliases llama-31, llama-3.2, llama-3.3, ...)
    gemma-2       google/gemma-2-2b-it               (a system message raises)
    mistral-nemo  mistralai/Mistral-Nemo-Instruct-2407
    phi-3.5       microsoft/Phi-3.5-mini-instruct    (alias phi-35)
    qwen-2.5      Qwen/Qwen2.5-7B-Instruct           (aliases qwen2.5, qwen25, qwen-25)
    chatml        ChatML, no default system prompt
    alpaca        Unsloth's multi-turn Alpaca

    unsloth, zephyr, mistral, llama, vicuna, vicuna_old, gemma (gemma2), gemma_chatml,
    llama-3 (llama3), phi-3, phi-4, gemma-3 (gemma3), gemma-3n, lfm-2, starling, yi-chat

Note `gemma-2` (Google's, no system role) differs from Unsloth's `gemma2` (merges the system
text into the first user turn), and `llama-3.1`/`phi-3.5` follow the official templates where
Unsloth's copies differ (Unsloth's llama-3.1 neither trims contents nor uses Meta's default date).
None of them renders tool calls; they raise when given tools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from infuse.data import template_texts as texts
from infuse.errors import TemplateError

ALPACA_SYSTEM = (
    "Below are some instructions that describe some tasks. "
    "Write responses that appropriately complete each request."
)
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


@dataclass(frozen=True)
class BuiltinTemplate:
    """One built-in format: how to build its jinja text and what it reproduces."""

    name: str
    build: Callable[[str | None], str]
    reproduces: str
    default_system: str | None = None
    aliases: tuple[str, ...] = ()

    def text(self, system_message: str | None = None) -> str:
        """The jinja text, with `system_message` replacing the default system prompt if given."""
        if system_message is not None and self.default_system is None:
            raise TemplateError(
                f"Template '{self.name}' has no default system prompt to replace; "
                "put a system message into the conversations instead."
            )
        return self.build(self.default_system if system_message is None else system_message)


def _fixed(builder: Callable[[], str]) -> Callable[[str | None], str]:
    return lambda _system: builder()


_TEMPLATES = [
    BuiltinTemplate(
        "llama-3.1",
        texts.llama31,
        "meta-llama/Llama-3.1-8B-Instruct",
        "",
        ("llama-31", "llama-3.2", "llama-3.3", "llama-32", "llama-33"),
    ),
    BuiltinTemplate("gemma-2", _fixed(texts.gemma2), "google/gemma-2-2b-it"),
    BuiltinTemplate(
        "mistral-nemo", _fixed(texts.mistral_nemo), "mistralai/Mistral-Nemo-Instruct-2407"
    ),
    BuiltinTemplate(
        "phi-3.5", _fixed(texts.phi35), "microsoft/Phi-3.5-mini-instruct", None, ("phi-35",)
    ),
    BuiltinTemplate(
        "qwen-2.5",
        texts.qwen25,
        "Qwen/Qwen2.5-7B-Instruct",
        QWEN_SYSTEM,
        ("qwen2.5", "qwen25", "qwen-25"),
    ),
    BuiltinTemplate("chatml", _fixed(texts.chatml), "ChatML"),
    BuiltinTemplate("alpaca", texts.alpaca, "Unsloth 'alpaca'", ALPACA_SYSTEM),
    BuiltinTemplate(
        "unsloth", texts.unsloth, "Unsloth 'unsloth'", "You are a helpful assistant to the user"
    ),
    BuiltinTemplate("zephyr", _fixed(texts.zephyr), "Unsloth 'zephyr'"),
    BuiltinTemplate("mistral", _fixed(texts.mistral_v1), "Unsloth 'mistral'"),
    BuiltinTemplate("llama", _fixed(texts.llama2), "Unsloth 'llama' (Llama 2)"),
    BuiltinTemplate(
        "vicuna",
        texts.vicuna,
        "Unsloth 'vicuna'",
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    ),
    BuiltinTemplate(
        "vicuna_old",
        texts.vicuna_old,
        "Unsloth 'vicuna_old'",
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions.",
        ("vicuna old",),
    ),
    BuiltinTemplate(
        "gemma", _fixed(texts.gemma_merged_system), "Unsloth 'gemma'", None, ("gemma2",)
    ),
    BuiltinTemplate(
        "gemma_chatml",
        lambda _s: texts.chatml_system_fallback(with_bos=True),
        "Unsloth 'gemma_chatml'",
        None,
        ("gemma2_chatml",),
    ),
    BuiltinTemplate("llama-3", _fixed(texts.llama3), "Unsloth 'llama-3'", None, ("llama3",)),
    BuiltinTemplate("phi-3", _fixed(texts.phi3), "Unsloth 'phi-3'"),
    BuiltinTemplate("phi-4", _fixed(texts.phi4), "Unsloth 'phi-4'"),
    BuiltinTemplate(
        "gemma-3",
        lambda _s: texts.gemma3({"image": "<start_of_image>"}),
        "Unsloth 'gemma-3'",
        None,
        ("gemma3",),
    ),
    BuiltinTemplate(
        "gemma-3n",
        lambda _s: texts.gemma3({"audio": "<audio_soft_token>", "image": "<image_soft_token>"}),
        "Unsloth 'gemma-3n'",
        None,
        ("gemma3n",),
    ),
    BuiltinTemplate(
        "lfm-2",
        lambda _s: texts.chatml_with_prefix("\n", with_bos=True),
        "Unsloth 'lfm-2'",
        None,
        ("lfm-2.5",),
    ),
    BuiltinTemplate("starling", _fixed(texts.starling), "Unsloth 'starling'"),
    BuiltinTemplate(
        "yi-chat", lambda _s: texts.chatml_with_prefix("\n", with_bos=False), "Unsloth 'yi-chat'"
    ),
]
_BY_NAME = {template.name: template for template in _TEMPLATES}
TEMPLATE_ALIASES: dict[str, str] = {alias: t.name for t in _TEMPLATES for alias in t.aliases}
BUILTIN_TEMPLATES: tuple[str, ...] = tuple(_BY_NAME)
"""Canonical built-in names; `TEMPLATE_ALIASES` maps the other accepted spellings to them."""

DEFAULT_MAPPING = {"role": "role", "content": "content", "user": "user", "assistant": "assistant"}


def resolve_template_name(name: str) -> str:
    """The canonical built-in name for `name` (case-insensitive, aliases accepted).

    Raises TemplateError listing the names when `name` is unknown.
    """
    key = name.strip().lower()
    key = TEMPLATE_ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise TemplateError(
            f"Unknown chat template '{name}'. Built-in names: {', '.join(BUILTIN_TEMPLATES)} "
            f"(also accepted: {', '.join(TEMPLATE_ALIASES)})."
        )
    return key


def builtin_template(name: str) -> BuiltinTemplate:
    """The `BuiltinTemplate` registered under `name` (or one of its aliases)."""
    return _BY_NAME[resolve_template_name(name)]


def builtin_template_text(
    name: str, mapping: dict[str, str] | None = None, system_message: str | None = None
) -> str:
    """The jinja text of built-in `name`, optionally accepting ShareGPT-shaped messages (`mapping`)."""
    text = builtin_template(name).text(system_message)
    if mapping is not None and dict(mapping) != DEFAULT_MAPPING:
        text = role_mapping_prelude(mapping) + text
    return text


def role_mapping_prelude(mapping: dict[str, str]) -> str:
    """Jinja that rewrites `{from, value}` messages into `{role, content}` before the template runs.

    `mapping` is Unsloth's: `{"role": "from", "content": "value", "user": "human", "assistant": "gpt"}`.
    Messages that already carry `role` pass through unchanged, so both shapes render alike.
    """
    missing = {"role", "content"} - set(mapping)
    if missing:
        raise TemplateError(
            f"mapping {mapping!r} lacks {sorted(missing)}: give the message keys that hold the role "
            "and the text, e.g. {'role': 'from', 'content': 'value', 'user': 'human', 'assistant': 'gpt'}."
        )
    role_key, content_key = (
        texts.jinja_literal(mapping["role"]),
        texts.jinja_literal(mapping["content"]),
    )
    renames = ", ".join(
        f"{texts.jinja_literal(mapping[role])}: {texts.jinja_literal(role)}"
        for role in ("user", "assistant", "system")
        if role in mapping and mapping[role] != role
    )
    return (
        "{%- if messages and messages[0]['role'] is not defined -%}"
        "{%- set renamed = namespace(turns=[]) -%}"
        "{%- for turn in messages -%}"
        "{%- set speaker = turn[" + role_key + "] -%}"
        "{%- set renamed.turns = renamed.turns + [{'role': {"
        + renames
        + "}.get(speaker, speaker), "
        "'content': turn[" + content_key + "]}] -%}"
        "{%- endfor -%}"
        "{%- set messages = renamed.turns -%}"
        "{%- endif -%}"
    )


def get_chat_template(
    tokenizer: Any,
    name: str | tuple[str, str] | None = None,
    mapping: dict[str, str] | None = None,
    *,
    system_message: str | None = None,
    map_eos_token: bool = True,
    chat_template: str | tuple[str, str] | None = None,
) -> Any:
    """Set built-in template `name` on `tokenizer` (replacing any it has) and return the tokenizer.

    Unsloth-compatible: `chat_template=` is accepted for `name`, a `(jinja_text, stop_word)` tuple
    sets a custom template, `mapping` lets ShareGPT `from`/`value` messages render, and
    `system_message` replaces the default system prompt of templates that have one.
    `map_eos_token` is accepted for compatibility; infuse never edits the vocabulary.
    Raises TemplateError for an unknown name (listing the built-in names).
    """
    del map_eos_token
    if name is not None and chat_template is not None:
        raise TemplateError("Give the template once: either `name` or `chat_template`, not both.")
    choice = (
        name if name is not None else (chat_template if chat_template is not None else "chatml")
    )
    if isinstance(choice, (tuple, list)):
        text = str(choice[0])
        if mapping is not None and dict(mapping) != DEFAULT_MAPPING:
            text = role_mapping_prelude(mapping) + text
    else:
        text = builtin_template_text(choice, mapping, system_message)
    tokenizer.chat_template = text
    return tokenizer


def tokenizer_template(tokenizer: Any) -> str | None:
    """The tokenizer's chat template text (the `default` one when it has several), or None."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template or None


def template_variables(tokenizer: Any) -> dict[str, str]:
    """The variables transformers passes a template besides the messages: bos_token, eos_token, ..."""
    special = getattr(tokenizer, "special_tokens_map", None) or {}
    return {key: str(value) for key, value in special.items() if isinstance(value, str)}


def require_template(tokenizer: Any) -> str:
    """The tokenizer's template text; raises TemplateError naming the fix when it has none."""
    template = tokenizer_template(tokenizer)
    if template is None:
        raise TemplateError(
            "This tokenizer has no chat template: pass --chat-template NAME "
            f"(Python: get_chat_template(tokenizer, NAME)), one of {', '.join(BUILTIN_TEMPLATES)}."
        )
    return template


def render_conversation(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool = False,
    **template_kwargs: Any,
) -> str:
    """The conversation as the tokenizer's chat template prints it (what the model reads).

    Raises TemplateError when the tokenizer has no template or the template refuses the
    conversation (e.g. a system message for gemma-2).
    """
    template = require_template(tokenizer)
    try:
        return tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            chat_template=template,
            **template_kwargs,
        )
    except Exception as error:  # jinja's TemplateError and UndefinedError, transformers' ValueError
        raise TemplateError(
            f"The chat template could not render this conversation: {error}"
        ) from error


@lru_cache(maxsize=64)
def compile_template(text: str):
    """Compile `text` once, in the same jinja environment transformers uses for chat templates."""
    import json
    from datetime import datetime

    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """`{% generation %}...{% endgeneration %}` (assistant-mask markers) renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["namespace"] = jinja2.utils.Namespace
    return env.from_string(text)


_PROBES: list[tuple[list[dict[str, str]], bool]] = [
    ([{"role": "user", "content": "Hi there"}], True),
    ([{"role": "user", "content": " Hi "}, {"role": "assistant", "content": " Hello! \n"}], False),
    (
        [
            {"role": "system", "content": " Be brief. "},
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
        True,
    ),
    (
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": "A2"},
        ],
        False,
    ),
    ([{"role": "system", "content": ""}, {"role": "user", "content": "Q"}], False),
]


def _fingerprint(text: str, variables: dict[str, str]) -> tuple:
    compiled = compile_template(text)
    prints = []
    for messages, add_generation_prompt in _PROBES:
        try:
            prints.append(
                compiled.render(
                    messages=messages,
                    add_generation_prompt=add_generation_prompt,
                    tools=None,
                    documents=None,
                    **variables,
                )
            )
        except Exception as error:  # a template that refuses a probe is part of its behaviour
            prints.append(("raises", type(error).__name__))
    return tuple(prints)


def detect_template(tokenizer: Any) -> str | None:
    """The built-in name whose rendering matches the tokenizer's own template, or None.

    Compared by behaviour on probe conversations (with the tokenizer's bos/eos), so a model's
    official template is recognised as the built-in that reproduces it.
    """
    template = tokenizer_template(tokenizer)
    if template is None:
        return None
    variables = template_variables(tokenizer)
    try:
        own = _fingerprint(template, variables)
    except Exception:  # the tokenizer's template does not even compile
        return None
    for name in BUILTIN_TEMPLATES:
        if _fingerprint(builtin_template_text(name), variables) == own:
            return name
    return None
