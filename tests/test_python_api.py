"""The Python API is the one the README promises: every CLI command has a twin that imports from
its package, every package exports lazily through one mechanism, and the README's Python
snippets run."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# CLI command -> its Python twin ("package:name").
TWINS = {
    "quickstart": ["infuse.quickstart:plan_quickstart", "infuse.quickstart:run_quickstart"],
    "data inspect": ["infuse.data:inspect_file"],
    "data convert": ["infuse.data:convert_file"],
    "data synth": ["infuse.data:synthesize_qa"],
    "train": ["infuse.train:train", "infuse.train:resolve_run_config"],
    "generate": ["infuse.train:generate_from_run"],
    "chat": ["infuse.train:load_run_model"],
    "export": ["infuse.train:export_run"],
    "kb": ["infuse.knowledge:KnowledgeBase", "infuse.knowledge:read_paths"],
    "ask --mode rag": ["infuse.rag:answer", "infuse.rag:RagSession"],
    "ask --mode cag": ["infuse.cag:answer", "infuse.cag:CagSession"],
    "cag build": ["infuse.cag:build_cache"],
    "eval": ["infuse.eval:evaluate"],
    "eval retrieval": ["infuse.knowledge:evaluate_retrieval"],
    "scrape crawl": ["infuse.scrape:crawl"],
    "scrape extract": ["infuse.scrape:extract_pages"],
    "serve": ["infuse.serve:build_app", "infuse.serve:run_http"],
}


@pytest.mark.parametrize("command", sorted(TWINS))
def test_every_command_has_a_python_twin(command):
    for target in TWINS[command]:
        module, name = target.split(":")
        assert callable(getattr(importlib.import_module(module), name)), target


@pytest.mark.parametrize("package", ["infuse.data", "infuse.train", "infuse.knowledge", "infuse.cag",
                                     "infuse.scrape", "infuse.serve", "infuse.eval", "infuse.methods"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute"):
        module.no_such_name  # noqa: B018


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_imports_work():
    """Every `import`/`from ... import` line of the README's Python snippets runs."""
    lines = [line for snippet in python_snippets() for line in snippet.splitlines()
             if re.match(r"(from \S+ )?import ", line)]
    assert lines, "the README has Python snippets"
    for line in lines:
        exec(line.split("#")[0], {})  # noqa: S102 - our own README


def test_readme_dataset_snippet_runs():
    """The dataset snippet, on a tiny Alpaca dataset and a tiny tokenizer."""
    from datasets import Dataset
    from tiny_models import build_tiny_tokenizer

    snippet = next(s for s in python_snippets() if "to_sharegpt" in s)
    dataset = Dataset.from_dict({"instruction": ["Say hi", "Add"], "input": ["", "1 and 2"],
                                 "output": ["hi", "3"]})
    namespace = {"dataset": dataset, "tokenizer": build_tiny_tokenizer()}
    exec(snippet, namespace)  # noqa: S102 - our own README
    conversations = namespace["dataset"]["conversations"]
    assert conversations[1][0] == {"role": "user", "content": "Add\nYour input is:\n1 and 2"}
    assert "<|start_header_id|>" in namespace["tokenizer"].chat_template
