"""Built-in chat templates render exactly like the official / Unsloth templates they reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import CHATML_TEMPLATE, build_tiny_tokenizer

from infuse.data.template_texts import jinja_literal
from infuse.data.templates import (
    BUILTIN_TEMPLATES,
    TEMPLATE_ALIASES,
    builtin_template_text,
    compile_template,
    detect_template,
    get_chat_template,
    render_conversation,
    resolve_template_name,
)
from infuse.errors import TemplateError

FIXTURES = Path(__file__).parent / "fixtures"
OFFICIAL = {
    "llama-3.1": ("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    "gemma-2": ("google-gemma-2-2b-it", "<bos>", "<eos>"),
    "mistral-nemo": ("mistralai-Mistral-Nemo-Instruct-2407", "<s>", "</s>"),
    "phi-3.5": ("microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>"),
    "qwen-2.5": ("Qwen-Qwen2.5-7B-Instruct", "<|endoftext|>", "<|im_end|>"),
    "chatml": (None, "<|endoftext|>", "<|im_end|>"),
}


def turn(role: str, content) -> dict:
    return {"role": role, "content": content}


CONVERSATIONS = [
    [turn("user", "Hi")],
    [turn("user", "  What is 2+2?  \n"), turn("assistant", "\n 4. \n")],
    [
        turn("system", " You are terse. "),
        turn("user", "Q1"),
        turn("assistant", "A1"),
        turn("user", " Q2"),
        turn("assistant", "A2 "),
    ],
    [turn("system", ""), turn("user", "Q"), turn("assistant", "A")],
    [turn("system", "Sys"), turn("user", "Q")],
    [turn("user", "Q1"), turn("assistant", "A1"), turn("user", "Q2")],
    [turn("user", "Q1"), turn("user", "Q2")],
    [turn("assistant", "A first")],
    [turn("user", "a"), turn("assistant", "b"), turn("system", "mid system"), turn("user", "c")],
    [turn("user", 'it\'s "quoted" \\ back {{ not jinja }} <|im_end|>')],
    [turn("user", "Ünïcödé 😀\ttab\r\n")],
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(chat_template=None)


def render_or_raise(tokenizer, text: str, messages, add_generation_prompt: bool, **variables):
    try:
        return tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            chat_template=text,
            **variables,
        )
    except Exception as error:  # the template refused the conversation
        return ("raises", type(error).__name__)


def official_text(name: str) -> str:
    filename = OFFICIAL[name][0]
    return (
        CHATML_TEMPLATE
        if filename is None
        else (FIXTURES / "official_templates" / f"{filename}.jinja").read_text()
    )


@pytest.mark.parametrize("name", list(OFFICIAL))
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_builtin_matches_official_template(tokenizer, name, add_generation_prompt):
    _, bos, eos = OFFICIAL[name]
    ours, official = builtin_template_text(name), official_text(name)
    for messages in CONVERSATIONS:
        expected = render_or_raise(
            tokenizer, official, messages, add_generation_prompt, bos_token=bos, eos_token=eos
        )
        got = render_or_raise(
            tokenizer, ours, messages, add_generation_prompt, bos_token=bos, eos_token=eos
        )
        assert got == expected, messages


def test_official_behaviours_hold(tokenizer):
    """Spot checks of what the spec table promises, independent of the fixtures."""
    llama = builtin_template_text("llama-3.1")
    text = tokenizer.apply_chat_template(
        [turn("user", " Hi ")],
        tokenize=False,
        chat_template=llama,
        bos_token="<|begin_of_text|>",
        date_string="01 Jan 2026",
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 01 Jan 2026\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
        "\n\nHi<|eot_id|>"
    )
    with pytest.raises(Exception, match="system role"):
        tokenizer.apply_chat_template(
            [turn("system", "s"), turn("user", "u")],
            tokenize=False,
            chat_template=builtin_template_text("gemma-2"),
        )
    nemo = tokenizer.apply_chat_template(
        [turn("system", "S"), turn("user", "U1"), turn("assistant", "A1"), turn("user", "U2")],
        tokenize=False,
        chat_template=builtin_template_text("mistral-nemo"),
        bos_token="<s>",
        eos_token="</s>",
    )
    assert nemo == "<s>[INST]U1[/INST]A1</s>[INST]S\n\nU2[/INST]"
    qwen = tokenizer.apply_chat_template(
        [turn("user", "u")], tokenize=False, chat_template=builtin_template_text("qwen-2.5")
    )
    assert qwen.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_tools_raise_instead_of_rendering_differently(tokenizer):
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
    for name in ("llama-3.1", "qwen-2.5", "mistral-nemo"):
        with pytest.raises(Exception, match="tools"):
            tokenizer.apply_chat_template(
                [turn("user", "u")],
                tools=[tool],
                tokenize=False,
                chat_template=builtin_template_text(name),
            )


UNSLOTH = json.loads((FIXTURES / "unsloth_renderings.json").read_text())


@pytest.mark.parametrize("name", sorted({case["name"] for case in UNSLOTH["cases"]}))
def test_unsloth_names_render_as_unsloth_does(tokenizer, name):
    ours = builtin_template_text(name)
    cases = [case for case in UNSLOTH["cases"] if case["name"] == name]
    assert cases
    for case in cases:
        got = render_or_raise(
            tokenizer, ours, case["messages"], case["add_generation_prompt"], **UNSLOTH["variables"]
        )
        expected = case["expected"] if case["expected"] is not None else got
        assert got == expected, case
        assert (case["expected"] is None) == isinstance(got, tuple), case


def test_every_name_and_alias_resolves_and_compiles():
    for name in [*BUILTIN_TEMPLATES, *TEMPLATE_ALIASES]:
        compile_template(builtin_template_text(name))
    assert resolve_template_name(" Qwen2.5 ") == "qwen-2.5"
    assert resolve_template_name("llama-3.3") == "llama-3.1"
    assert resolve_template_name("gemma2") == "gemma"  # Unsloth's gemma2 is not Google's gemma-2


def test_unknown_name_lists_the_builtins(tokenizer):
    with pytest.raises(TemplateError) as caught:
        get_chat_template(tokenizer, "llama-9")
    assert (
        "llama-9" in str(caught.value)
        and "chatml" in str(caught.value)
        and "gemma-2" in str(caught.value)
    )


def test_get_chat_template_sets_and_returns_the_tokenizer():
    tokenizer = build_tiny_tokenizer()
    result = get_chat_template(tokenizer, chat_template="llama-3")  # Unsloth's keyword works
    assert result is tokenizer and tokenizer.chat_template == builtin_template_text("llama-3")
    get_chat_template(
        tokenizer, ("{{ messages[0]['content'] }}", "<|im_end|>")
    )  # custom (text, stop)
    assert render_conversation(tokenizer, [turn("user", "x")]) == "x"


def test_mapping_renders_sharegpt_like_standard_messages():
    mapping = {"role": "from", "content": "value", "user": "human", "assistant": "gpt"}
    sharegpt = [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "Q"},
        {"from": "gpt", "value": "A"},
    ]
    standard = [turn("system", "S"), turn("user", "Q"), turn("assistant", "A")]
    for name in ("chatml", "llama-3.1", "alpaca", "mistral-nemo"):
        tokenizer = get_chat_template(build_tiny_tokenizer(), name, mapping=mapping)
        assert render_conversation(tokenizer, sharegpt) == render_conversation(tokenizer, standard)
        assert "human" not in render_conversation(tokenizer, sharegpt)


def test_system_message_replaces_the_default(tokenizer):
    text = builtin_template_text(
        "alpaca", system_message="Answer as Acme's 'bot' \\ \"quoted\".\nOK"
    )
    rendered = tokenizer.apply_chat_template(
        [turn("user", "q")], tokenize=False, chat_template=text, bos_token="", eos_token="</s>"
    )
    assert rendered.startswith("Answer as Acme's 'bot' \\ \"quoted\".\nOK\n\n### Instruction:\nq")
    with pytest.raises(TemplateError, match="no default system prompt"):
        builtin_template_text("gemma-2", system_message="x")


@pytest.mark.parametrize(
    "value", ["plain", "it's", 'say "hi"', "back\\slash \\n", "line\nbreak\r\n\t", "ü 😀", ""]
)
def test_jinja_literal_round_trips(value):
    assert compile_template("{{ " + jinja_literal(value) + " }}").render() == value


def test_detect_template_recognises_official_and_builtin_templates():
    for name in OFFICIAL:
        tokenizer = build_tiny_tokenizer(chat_template=official_text(name))
        assert detect_template(tokenizer) == name
    tokenizer = get_chat_template(build_tiny_tokenizer(), "vicuna")
    assert detect_template(tokenizer) == "vicuna"
    assert detect_template(build_tiny_tokenizer(chat_template="{{ 'custom' }}")) is None
    assert detect_template(build_tiny_tokenizer(chat_template=None)) is None


def test_render_conversation_errors_name_the_fix():
    with pytest.raises(TemplateError, match="--chat-template NAME.*chatml"):
        render_conversation(build_tiny_tokenizer(chat_template=None), [turn("user", "q")])
    gemma = get_chat_template(build_tiny_tokenizer(), "gemma-2")
    with pytest.raises(TemplateError, match="no system role"):
        render_conversation(gemma, [turn("system", "s"), turn("user", "q")])
    assert render_conversation(gemma, [turn("user", "q")], add_generation_prompt=True).endswith(
        "<start_of_turn>model\n"
    )
