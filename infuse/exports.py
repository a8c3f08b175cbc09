"""The one way a package exports names lazily: `__getattr__` imports the defining module on
first use, so `import infuse.<package>` stays cheap and `infuse --help` instant.

    __getattr__, __all__ = lazy_exports(__name__, {"KnowledgeBase": "infuse.knowledge.kb", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module `__getattr__` resolving each name in `exports` ({name: defining module}) on first
    access, and the sorted `__all__` naming them."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__, sorted(exports)
