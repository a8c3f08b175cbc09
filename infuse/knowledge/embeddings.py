"""Sentence embeddings with sentence-transformers: the packaged all-MiniLM-L6-v2 or any local folder.

Vectors are L2-normalised float32, so cosine similarity is a dot product. Batched; on CUDA when
there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infuse.errors import ModelNotFoundError
from infuse.models import DEFAULT_EMBEDDER


class Embedder:
    """A sentence-transformers model loaded from a local folder (never a hub)."""

    def __init__(
        self, spec: str = DEFAULT_EMBEDDER, *, device: str | None = None, batch_size: int = 64
    ):
        from infuse.models import resolve_embedder

        self.spec = spec
        self.path: Path = resolve_embedder(spec)
        self.batch_size = batch_size
        self._device = device
        self._model: Any = None
        self._query_encoder: Any = None  # NumpyBert, False when the folder needs torch

    @property
    def model(self) -> Any:
        """The loaded SentenceTransformer (loaded on first use)."""
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                self._model = SentenceTransformer(
                    str(self.path), device=device, local_files_only=True
                )
            except (OSError, ValueError) as error:
                raise ModelNotFoundError(
                    f"Embedding model at {self.path} could not be loaded ({error}). Give a "
                    "sentence-transformers folder (modules.json, config.json, weights)."
                ) from error
        return self._model

    @property
    def dimension(self) -> int:
        """Length of the vectors this model produces."""
        getter = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(getter())

    def embed(self, texts: Sequence[str], *, on_batch: Callable[[int], None] | None = None):
        """Embed texts in batches; returns a float32 array (len(texts), dimension), unit length.

        `on_batch(n)` is called after each batch with the number of texts done in it.
        """
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            vectors = self.model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
            parts.append(vectors.astype(np.float32))
            if on_batch is not None:
                on_batch(len(batch))
        return np.concatenate(parts)

    def embed_query(self, text: str):
        """Embed one question; returns a float32 vector of unit length.

        Until the full model is loaded, a plain BERT folder (the packaged one) runs in NumPy
        (`infuse.knowledge.numpy_bert`, same vector), sparing a one-question command the
        torch and sentence-transformers import.
        """
        if self._model is None and self._query_encoder is None:
            from infuse.knowledge import numpy_bert

            self._query_encoder = numpy_bert.load(self.path) or False
        if self._model is None and self._query_encoder:
            return self._query_encoder.encode(text)
        return self.embed([text])[0]
