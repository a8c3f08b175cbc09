"""`Closing`: an object that holds something to release (connections, a browser, a knowledge
base it opened) behind `close()`, and closes it at the end of a `with` block."""

from __future__ import annotations

from typing import Self


class Closing:
    """Subclasses implement `close()`; `with obj:` gives `obj` and closes it on the way out."""

    def close(self) -> None:
        """Release what this object holds (nothing here)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
