"""Optional cross-encoder reranking, from a local model folder (sentence-transformers CrossEncoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infuse.errors import ModelNotFoundError


class Reranker:
    """Scores (question, passage) pairs with a cross-encoder; higher means more relevant."""

    def __init__(self, path: str | Path, *, device: str | None = None, batch_size: int = 32):
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").exists():
            raise ModelNotFoundError(
                f"Reranker model folder {self.path} not found (no config.json there). Give a local "
                "cross-encoder folder, e.g. one saved with CrossEncoder.save(); infuse never downloads."
            )
        self.batch_size = batch_size
        self._device = device
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The loaded CrossEncoder (loaded on first use)."""
        if self._model is None:
            import torch
            from sentence_transformers import CrossEncoder

            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = CrossEncoder(str(self.path), device=device, local_files_only=True)
        return self._model

    def score(self, question: str, passages: list[str]) -> list[float]:
        """One relevance score per passage (raw model output, not normalised)."""
        if not passages:
            return []
        scores = self.model.predict(
            [(question, passage) for passage in passages],
            batch_size=self.batch_size,
            show_progress_bar=False,
        )
        return [float(value) for value in scores]
