"""An Ollama `Modelfile` for an exported GGUF: the run's chat template in Ollama's Go syntax.

Jinja chat templates cannot be translated in general, so we recognise the template families
infuse trains with (chatml, Llama 3, Gemma, Mistral, Phi-3, Zephyr) from their markers and
write the matching Go template and stop tokens. An unknown family gets no TEMPLATE line
(Ollama then reads the GGUF's own `tokenizer.chat_template`) and a warning.
"""

from __future__ import annotations

_FAMILIES: dict[str, tuple[str, str, list[str]]] = {
    # family: (marker in the Jinja text, Go template, stop tokens)
    "chatml": ("<|im_start|>", (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n"
    ), ["<|im_end|>", "<|im_start|>"]),
    "llama-3": ("<|start_header_id|>", (
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ), ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]),
    "gemma": ("<start_of_turn>", (
        "{{- range .Messages }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}"
        "{{ .Role }}{{ end }}\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n"
    ), ["<end_of_turn>", "<start_of_turn>"]),
    "mistral": ("[INST]", (
        "{{- range .Messages }}{{ if eq .Role \"user\" }}[INST] {{ .Content }} [/INST]"
        "{{ else if eq .Role \"assistant\" }}{{ .Content }}</s>{{ end }}{{ end }}"
    ), ["[INST]", "[/INST]", "</s>"]),
    "phi-3": ("<|end|>", (
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n"
    ), ["<|end|>", "<|user|>", "<|assistant|>"]),
    "zephyr": ("<|user|>", (
        "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n"
    ), ["</s>", "<|user|>", "<|assistant|>"]),
}


def template_family(jinja_template: str) -> str | None:
    """The known family a Jinja chat template belongs to, or None."""
    for family, (marker, _go, _stops) in _FAMILIES.items():
        if marker in jinja_template:
            return family
    return None


def render_modelfile(gguf_name: str, jinja_template: str, *, eos_token: str | None = None,
                     temperature: float | None = None) -> tuple[str, str | None]:
    """Modelfile text for `gguf_name` (relative path), and a warning when the family is unknown."""
    lines = [f"FROM ./{gguf_name}"]
    family = template_family(jinja_template)
    warning = None
    if family is None:
        warning = ("The chat template is of no family infuse knows; the Modelfile has no TEMPLATE, "
                   "so Ollama uses the GGUF's own tokenizer.chat_template. Check it answers right.")
        stops = [eos_token] if eos_token else []
    else:
        _marker, go_template, stops = _FAMILIES[family]
        lines.append(f'TEMPLATE """{go_template}"""')
        if eos_token and eos_token not in stops:
            stops = [*stops, eos_token]
    for stop in stops:
        lines.append(f'PARAMETER stop "{stop}"')
    if temperature is not None:
        lines.append(f"PARAMETER temperature {temperature}")
    return "\n".join(lines) + "\n", warning
