"""A question embedded in NumPy equals sentence-transformers' vector for the packaged embedder,
and a search answers without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

from infuse.knowledge import numpy_bert
from infuse.knowledge.embeddings import Embedder
from infuse.models import resolve_embedder


def test_numpy_query_vector_equals_sentence_transformers():
    embedder = Embedder()
    texts = ["What is the default threading mode of SQLite?", "x", "upstream ip_hash " * 200]
    fast = [embedder.embed_query(text) for text in texts]
    assert embedder._model is None and embedder._query_encoder  # torch was not needed
    full = embedder.embed(texts)
    for quick, reference in zip(fast, full, strict=True):
        assert quick.dtype == reference.dtype and quick.shape == reference.shape == (384,)
        assert float(quick @ reference) > 0.9999


def test_unsupported_folders_fall_back(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    assert numpy_bert.load(folder) is None
    source = resolve_embedder("minilm")
    for name in ("modules.json", "config.json", "sentence_bert_config.json"):
        (folder / name).write_text((source / name).read_text())
    config = json.loads((folder / "config.json").read_text())
    config["hidden_act"] = "relu"
    (folder / "config.json").write_text(json.dumps(config))
    assert numpy_bert.load(folder) is None


def test_embed_query_does_not_import_torch():
    code = ("import sys; from infuse.knowledge.embeddings import Embedder; "
            "v = Embedder().embed_query('hello'); print(len(v), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["384", "False"]
