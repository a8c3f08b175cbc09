"""Read a finished run folder back: its settings, its exact chat template, base + adapter.

Chat and generation always use the template the run trained on (`chat_template.jinja` in the
run folder); asking for a different one is refused, because a template mismatch between
training and chat is the most common reason a fine-tune "does not work".
"""

from __future__ import annotations

from pathlib import Path

from infuse.errors import ConfigError, ModelNotFoundError, TemplateError
from infuse.train.config import RunConfig, config_from_mapping, load_config_file

CONFIG_FILE = "config.toml"
TEMPLATE_FILE = "chat_template.jinja"


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The RunConfig a run was trained with; ModelNotFoundError when the folder is no run."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.exists() or not (run_dir / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"{run_dir} is not a finished infuse run (needs {CONFIG_FILE} and adapter_config.json). "
            "Train one with `infuse train --output DIR`."
        )
    return config_from_mapping(load_config_file(path), source=str(path))


def run_template(run_dir: str | Path, requested: str | None = None) -> str:
    """The chat template the run trained on; TemplateError if `requested` names a different one."""
    run_dir = Path(run_dir)
    path = run_dir / TEMPLATE_FILE
    if not path.exists():
        raise TemplateError(f"{path} is missing: the run folder lost its chat template; retrain or restore it.")
    stored = path.read_text(encoding="utf-8")
    if requested:
        config = read_run_config(run_dir)
        from infuse.models import resolve_chat_model
        from infuse.train.examples import apply_chat_template_choice
        from infuse.train.model import load_tokenizer_for

        tokenizer = load_tokenizer_for(resolve_chat_model(config.model))
        wanted = apply_chat_template_choice(tokenizer, requested)
        if wanted.strip() != stored.strip():
            trained = config.chat_template or "the model's own template"
            raise TemplateError(
                f"{run_dir} was trained with {trained} (stored in {TEMPLATE_FILE}); --chat-template "
                f"{requested} renders differently, and the adapter would see prompts it never saw. "
                "Drop --chat-template: the run's own template is used automatically."
            )
    return stored


def load_run_model(run_dir: str | Path, *, chat_template: str | None = None, device: str | None = None):
    """A `LocalChatModel` of base + the run's adapter, set to the run's exact chat template."""
    from infuse.llm.loading import load_local_chat_model

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    template = run_template(run_dir, chat_template)
    chat_model = load_local_chat_model(config.model, adapter=str(run_dir), device=device)
    chat_model.tokenizer.chat_template = template
    return chat_model


def generate_from_run(run_dir: str | Path, prompt: str, *, system: str | None = None,
                      max_new_tokens: int = 128, temperature: float = 0.0,
                      chat_template: str | None = None, chat_model=None):
    """One answer to `prompt` from base + adapter; returns an `infuse.llm.Generation`."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens}: must be >= 1.")
    chat_model = chat_model or load_run_model(run_dir, chat_template=chat_template)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return chat_model.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature)
