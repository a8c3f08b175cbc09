"""The jinja text of every built-in chat template (infuse's own wording of each format).

Each builder returns a template string for `tokenizer.chat_template`. They are written for
transformers' jinja environment (trim_blocks, lstrip_blocks, `raise_exception`) and use no
whitespace outside tags, so what they print is exactly the strings below. Builders that take
`system` splice a default system prompt in as a jinja string literal (see `jinja_literal`).

Which official or Unsloth rendering each one reproduces is listed in `infuse.data.templates`.
Tool calling is not rendered by any of them: a template whose original renders tools raises a
clear error when given some, rather than printing something different.
"""

from __future__ import annotations

NO_TOOLS = (
    "{%- if tools is defined and tools is not none -%}"
    "{{- raise_exception('This infuse template does not render tools; "
    "use the model\\'s own chat template for tool calling.') -}}"
    "{%- endif -%}"
)
ONLY_USER_ASSISTANT = "Only user and assistant roles are supported!"


def jinja_literal(text: str) -> str:
    """`text` as a single-quoted jinja string literal that evaluates back to `text` exactly."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return "'" + escaped + "'"


def _raise(message: str) -> str:
    return "{{- raise_exception(" + jinja_literal(message) + ") -}}"


def _gen_prompt(text: str) -> str:
    return "{%- if add_generation_prompt -%}{{- " + jinja_literal(text) + " -}}{%- endif -%}"


# --------------------------------------------------------------------------- official formats


def chatml() -> str:
    """`<|im_start|>role\\n...<|im_end|>\\n` for every message, whatever its role."""
    return (
        "{%- for turn in messages -%}"
        "{{- '<|im_start|>' + turn['role'] + '\\n' + turn['content'] + '<|im_end|>\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<|im_start|>assistant\n")
    )


def qwen25(system: str) -> str:
    """ChatML with a default system turn; later system turns render in place."""
    return (
        "{%- if tools -%}"
        + _raise(
            "This infuse template does not render tools; use Qwen's own template for tool calling."
        )
        + "{%- endif -%}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
        "{%- else -%}"
        "{{- '<|im_start|>system\\n' + " + jinja_literal(system) + " + '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- for turn in messages -%}"
        "{%- if turn['role'] == 'tool' or (turn['role'] == 'assistant' and turn['tool_calls']) -%}"
        + _raise("Tool turns are not rendered by infuse's qwen-2.5 template; use Qwen's own.")
        + "{%- elif turn['role'] in ['user', 'assistant'] or (turn['role'] == 'system' and not loop.first) -%}"
        "{{- '<|im_start|>' + turn['role'] + '\\n' + turn['content'] + '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}" + _gen_prompt("<|im_start|>assistant\n")
    )


def llama31(system: str) -> str:
    """Llama 3.1 headers; a system block always comes first, with the knowledge-cutoff and date."""
    return (
        "{{- bos_token -}}"
        "{%- if (tools is defined and tools is not none) or custom_tools is defined "
        "or builtin_tools is defined -%}"
        + _raise(
            "This infuse template does not render tools; use Meta's own template for tool calling."
        )
        + "{%- endif -%}"
        "{%- if date_string is not defined -%}{%- set date_string = '26 Jul 2024' -%}{%- endif -%}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set system_text = messages[0]['content'] | trim -%}"
        "{%- set messages = messages[1:] -%}"
        "{%- else -%}"
        "{%- set system_text = " + jinja_literal(system) + " -%}"
        "{%- endif -%}"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' -}}"
        "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' -}}"
        "{{- system_text + '<|eot_id|>' -}}"
        "{%- for turn in messages -%}"
        "{%- if turn['role'] in ['tool', 'ipython'] or 'tool_calls' in turn -%}"
        + _raise("Tool turns are not rendered by infuse's llama-3.1 template; use Meta's own.")
        + "{%- endif -%}"
        "{{- '<|start_header_id|>' + turn['role'] + '<|end_header_id|>\\n\\n' -}}"
        "{{- turn['content'] | trim + '<|eot_id|>' -}}"
        "{%- endfor -%}" + _gen_prompt("<|start_header_id|>assistant<|end_header_id|>\n\n")
    )


def gemma2() -> str:
    """Gemma 2: user/model turns that must alternate; no system role."""
    return (
        "{{- bos_token -}}"
        "{%- if messages[0]['role'] == 'system' -%}"
        + _raise(
            "Gemma 2 has no system role: put the system text into the first user message "
            "(or use the 'gemma' template, which merges it there)."
        )
        + "{%- endif -%}"
        "{%- for turn in messages -%}"
        "{%- if (turn['role'] == 'user') != loop.index0 is even -%}"
        + _raise("Conversation roles must alternate user/assistant/user/assistant/...")
        + "{%- endif -%}"
        "{%- set speaker = 'model' if turn['role'] == 'assistant' else turn['role'] -%}"
        "{{- '<start_of_turn>' + speaker + '\\n' + turn['content'] | trim + '<end_of_turn>\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<start_of_turn>model\n")
    )


def mistral_nemo() -> str:
    """Mistral Nemo: `[INST]...[/INST]answer</s>`; the system text joins the final user turn only."""
    return (
        NO_TOOLS + "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set system_text = messages[0]['content'] -%}"
        "{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        "{%- set turns = messages -%}"
        "{%- endif -%}"
        "{%- for turn in turns -%}"
        "{%- if turn['role'] in ['tool', 'tool_results'] "
        "or (turn['tool_calls'] is defined and turn['tool_calls'] is not none) -%}"
        + _raise(
            "Tool turns are not rendered by infuse's mistral-nemo template; use Mistral's own."
        )
        + "{%- elif (turn['role'] == 'user') != loop.index0 is even -%}"
        + _raise(
            "After the optional system message, conversation roles must alternate "
            "user/assistant/user/assistant/..."
        )
        + "{%- endif -%}"
        "{%- endfor -%}"
        "{{- bos_token -}}"
        "{%- for turn in turns -%}"
        "{%- if turn['role'] == 'user' and loop.last and system_text is defined -%}"
        "{{- '[INST]' + system_text + '\\n\\n' + turn['content'] + '[/INST]' -}}"
        "{%- elif turn['role'] == 'user' -%}"
        "{{- '[INST]' + turn['content'] + '[/INST]' -}}"
        "{%- elif turn['role'] == 'assistant' -%}"
        "{{- turn['content'] + eos_token -}}"
        "{%- else -%}"
        + _raise(
            "Only user and assistant roles are supported, with the exception of an initial "
            "optional system message!"
        )
        + "{%- endif -%}"
        "{%- endfor -%}"
    )


def phi35() -> str:
    """Phi-3.5: `<|role|>\\n...<|end|>\\n`; empty system turns vanish; eos closes a finished chat."""
    return (
        "{%- for turn in messages -%}"
        "{%- if turn['role'] in ['user', 'assistant'] or (turn['role'] == 'system' and turn['content']) -%}"
        "{{- '<|' + turn['role'] + '|>\\n' + turn['content'] + '<|end|>\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}"
    )


# --------------------------------------------------------------------------- Unsloth's formats


def _system_then_turns(
    system: str, separator: str, user: str, assistant: str, tail: str, gen: str
) -> str:
    """bos, the system text (or a default) + separator, then user/assistant turns; others raise."""
    return (
        "{{- bos_token -}}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{{- messages[0]['content'] + " + jinja_literal(separator) + " -}}"
        "{%- set turns = messages[1:] -%}"
        "{%- else -%}"
        "{{- " + jinja_literal(system + separator) + " -}}"
        "{%- set turns = messages -%}"
        "{%- endif -%}"
        "{%- for turn in turns -%}"
        "{%- if turn['role'] == 'user' -%}"
        "{{- " + jinja_literal(user) + " + turn['content'] + " + jinja_literal(separator) + " -}}"
        "{%- elif turn['role'] == 'assistant' -%}"
        "{{- "
        + jinja_literal(assistant)
        + " + turn['content'] + eos_token + "
        + jinja_literal(tail)
        + " -}}"
        "{%- else -%}" + _raise(ONLY_USER_ASSISTANT) + "{%- endif -%}"
        "{%- endfor -%}" + _gen_prompt(gen)
    )


def alpaca(system: str) -> str:
    """Alpaca, multi-turn (Unsloth's): `### Instruction:` / `### Response:` blocks."""
    return _system_then_turns(
        system, "\n\n", "### Instruction:\n", "### Response:\n", "\n\n", "### Response:\n"
    )


def unsloth(system: str) -> str:
    """Unsloth's own compact format: `>>> User: ` / `>>> Assistant: `."""
    return _system_then_turns(
        system, "\n", ">>> User: ", ">>> Assistant: ", "\n", ">>> Assistant: "
    )


def vicuna_old(system: str) -> str:
    """Vicuna v0: `### Human: ` / `### Assistant: `."""
    return _system_then_turns(
        system, "\n", "### Human: ", "### Assistant: ", "\n", "### Assistant:"
    )


def vicuna(system: str) -> str:
    """Vicuna v1.1: `USER: ... ASSISTANT: ...</s>`, all on one line."""
    return _system_then_turns(system, " ", "USER: ", "ASSISTANT: ", "", "ASSISTANT:")


def zephyr() -> str:
    """Zephyr: `<|role|>\\n...</s>\\n`; any role other than user/assistant prints as system."""
    return (
        "{%- for turn in messages -%}"
        "{%- set speaker = turn['role'] if turn['role'] in ['user', 'assistant'] else 'system' -%}"
        "{{- '<|' + speaker + '|>\\n' + turn['content'] + eos_token + '\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<|assistant|>\n")
    )


def chatml_system_fallback(with_bos: bool) -> str:
    """Unsloth's ChatML: roles other than user/assistant print as system (bos first for Gemma)."""
    return (
        ("{{- bos_token -}}" if with_bos else "") + "{%- for turn in messages -%}"
        "{%- set speaker = turn['role'] if turn['role'] in ['user', 'assistant'] else 'system' -%}"
        "{{- '<|im_start|>' + speaker + '\\n' + turn['content'] + '<|im_end|>\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<|im_start|>assistant\n")
    )


def mistral_v1() -> str:
    """Unsloth's Mistral: `[INST] ... [/INST]answer</s>`; a system text is prefixed inside the first [INST]."""
    return (
        "{{- bos_token -}}"
        "{%- if messages[0]['role'] == 'system' and messages[1]['role'] == 'user' -%}"
        "{{- '[INST] ' + messages[0]['content'] + ' ' + messages[1]['content'] + ' [/INST]' -}}"
        "{%- set turns = messages[2:] -%}"
        "{%- elif messages[0]['role'] == 'system' -%}"
        "{{- '[INST] ' + messages[0]['content'] + ' [/INST]' -}}"
        "{%- set turns = messages[1:] -%}"
        "{%- else -%}{%- set turns = messages -%}{%- endif -%}"
        "{%- for turn in turns -%}"
        "{%- if turn['role'] == 'user' -%}{{- '[INST] ' + turn['content'] + ' [/INST]' -}}"
        "{%- elif turn['role'] == 'assistant' -%}{{- turn['content'] + eos_token -}}"
        "{%- else -%}" + _raise(ONLY_USER_ASSISTANT) + "{%- endif -%}"
        "{%- endfor -%}"
    )


def llama2() -> str:
    """Unsloth's Llama 2: bos before every `[INST]`, `<<SYS>>` block inside the first one."""
    return (
        "{%- if messages[0]['role'] == 'system' and messages[1]['role'] == 'user' -%}"
        "{{- bos_token + '[INST] <<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' -}}"
        "{{- messages[1]['content'] + ' [/INST]' -}}"
        "{%- set turns = messages[2:] -%}"
        "{%- elif messages[0]['role'] == 'system' -%}"
        "{{- bos_token + '[INST] ' + messages[0]['content'] + ' [/INST]' -}}"
        "{%- set turns = messages[1:] -%}"
        "{%- else -%}{%- set turns = messages -%}{%- endif -%}"
        "{%- for turn in turns -%}"
        "{%- if turn['role'] == 'user' -%}{{- bos_token + '[INST] ' + turn['content'] | trim + ' [/INST]' -}}"
        "{%- elif turn['role'] == 'assistant' -%}{{- ' ' + turn['content'] | trim + ' ' + eos_token -}}"
        "{%- else -%}" + _raise(ONLY_USER_ASSISTANT) + "{%- endif -%}"
        "{%- endfor -%}"
    )


def gemma_merged_system() -> str:
    """Unsloth's Gemma (1 and 2): a system text is merged into the first user turn."""
    return (
        "{{- bos_token -}}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{{- '<start_of_turn>user\\n' + messages[0]['content'] | trim + ' ' -}}"
        "{{- messages[1]['content'] | trim + '<end_of_turn>\\n' -}}"
        "{%- set messages = messages[2:] -%}"
        "{%- endif -%}"
        "{%- for turn in messages -%}"
        "{%- if turn['role'] in ['user', 'assistant'] -%}"
        "{%- set speaker = 'model' if turn['role'] == 'assistant' else 'user' -%}"
        "{{- '<start_of_turn>' + speaker + '\\n' + turn['content'] | trim + '<end_of_turn>\\n' -}}"
        "{%- else -%}" + _raise(ONLY_USER_ASSISTANT) + "{%- endif -%}"
        "{%- endfor -%}" + _gen_prompt("<start_of_turn>model\n")
    )


def gemma3(media_tokens: dict[str, str]) -> str:
    """Gemma 3 / 3n: system text prefixed to the first turn; alternation enforced; list contents."""
    media = "".join(
        "{%- elif part['type'] == "
        + jinja_literal(kind)
        + " -%}{{- "
        + jinja_literal(token)
        + " -}}"
        for kind, token in media_tokens.items()
    )
    return (
        "{{- bos_token -}}"
        "{%- set prefix = '' -%}"
        "{%- set turns = messages -%}"
        "{%- if messages[0]['role'] == 'system' -%}"
        "{%- set first = messages[0]['content'] -%}"
        "{%- set prefix = (first if first is string else first[0]['text']) + '\\n\\n' -%}"
        "{%- set turns = messages[1:] -%}"
        "{%- endif -%}"
        "{%- for turn in turns -%}"
        "{%- if (turn['role'] == 'user') != loop.index0 is even -%}"
        + _raise("Conversation roles must alternate user/assistant/user/assistant/...")
        + "{%- endif -%}"
        "{%- set speaker = 'model' if turn['role'] == 'assistant' else turn['role'] -%}"
        "{{- '<start_of_turn>' + speaker + '\\n' + (prefix if loop.first else '') -}}"
        "{%- if turn['content'] is string -%}{{- turn['content'] | trim -}}"
        "{%- elif turn['content'] is iterable -%}"
        "{%- for part in turn['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{- part['text'] | trim -}}" + media + "{%- endif -%}"
        "{%- endfor -%}"
        "{%- else -%}" + _raise("Invalid content type") + "{%- endif -%}"
        "{{- '<end_of_turn>\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<start_of_turn>model\n")
    )


def llama3() -> str:
    """Llama 3 (Unsloth's): header per message, trimmed contents, no system block of its own."""
    return (
        "{{- bos_token -}}"
        "{%- for turn in messages -%}"
        "{{- '<|start_header_id|>' + turn['role'] + '<|end_header_id|>\\n\\n' -}}"
        "{{- turn['content'] | trim + '<|eot_id|>' -}}"
        "{%- endfor -%}" + _gen_prompt("<|start_header_id|>assistant<|end_header_id|>\n\n")
    )


def phi3() -> str:
    """Unsloth's Phi-3: `<|role|>\\n...<|end|>\\n` for every message, no eos at the end."""
    return (
        "{%- for turn in messages -%}"
        "{{- '<|' + turn['role'] + '|>\\n' + turn['content'] + '<|end|>\\n' -}}"
        "{%- endfor -%}" + _gen_prompt("<|assistant|>\n")
    )


def phi4() -> str:
    """Phi-4: `<|im_start|>role<|im_sep|>...<|im_end|>`; other roles are skipped."""
    return (
        "{%- for turn in messages -%}"
        "{%- if turn['role'] in ['system', 'user', 'assistant'] -%}"
        "{{- '<|im_start|>' + turn['role'] + '<|im_sep|>' + turn['content'] + '<|im_end|>' -}}"
        "{%- endif -%}"
        "{%- endfor -%}" + _gen_prompt("<|im_start|>assistant<|im_sep|>")
    )


def chatml_with_prefix(prefix: str, with_bos: bool) -> str:
    """ChatML preceded by fixed text (LFM-2 and Yi print a newline first), optionally a bos."""
    return (
        "{{- "
        + jinja_literal(prefix)
        + " -}}"
        + ("{{- bos_token -}}" if with_bos else "")
        + chatml()
    )


def starling() -> str:
    """Starling-LM (OpenChat): `GPT4 Correct User: ...<|end_of_turn|>`, each turn indented 4 spaces."""
    return (
        "{{- bos_token -}}"
        "{%- for turn in messages -%}"
        "{{- '    GPT4 Correct ' + turn['role'].title() + ': ' + turn['content'] + '<|end_of_turn|>' -}}"
        "{%- endfor -%}" + _gen_prompt("    GPT4 Correct Assistant:")
    )
