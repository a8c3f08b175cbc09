"""A question's embedding without PyTorch: a BERT sentence encoder in NumPy.

Why our own: `infuse kb search` and `infuse ask` embed one short question per call, and
importing torch + sentence-transformers costs several seconds of a cold start (most of it on
a loaded 2-core machine) while the forward pass of a 6-layer MiniLM on ~20 tokens takes
milliseconds in NumPy. This reads the same sentence-transformers folder (tokenizer.json,
model.safetensors, mean pooling, normalisation) and gives the same vector (cosine > 0.9999, see
tests/knowledge/test_numpy_bert.py). Batches of documents still go through sentence-transformers
(`infuse.knowledge.embeddings`), which is faster there.

Only the plain case is handled: a BertModel with absolute positions, GELU, and mean, CLS or
max pooling; `load(folder)` returns None for anything else and the caller uses
sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _erf(x: Any) -> Any:
    """erf for arrays (Abramowitz and Stegun 7.1.26, error below 1.5e-7)."""
    import numpy as np

    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


class NumpyBert:
    """One sentence at a time through a BERT encoder, pooled and normalised like the folder says."""

    def __init__(self, folder: Path, config: dict, pooling: str, normalize: bool, max_len: int):
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_len)
        weights = load_file(str(folder / "model.safetensors"))
        self.w = {key.removeprefix("bert."): value.astype(np.float32, copy=False) for key, value in weights.items()}
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.pooling = pooling
        self.normalize = normalize
        self.dimension = int(config["hidden_size"])

    def _norm(self, x: Any, name: str) -> Any:
        import numpy as np

        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _dense(self, x: Any, name: str) -> Any:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def encode(self, text: str) -> Any:
        """The sentence's vector (float32; unit length when the folder normalises)."""
        import numpy as np

        ids = np.array(self.tokenizer.encode(text).ids)
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (self._dense(x, f"{p}.attention.self.{n}").reshape(len(ids), self.heads, size)
                       .transpose(1, 0, 2) for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(len(ids), -1)
            x = self._norm(self._dense(context, f"{p}.attention.output.dense") + x,
                           f"{p}.attention.output.LayerNorm")
            hidden = self._dense(x, f"{p}.intermediate.dense")
            hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.sqrt(2.0)))
            x = self._norm(self._dense(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        vector = {"mean": x.mean(0), "cls": x[0], "max": x.max(0)}[self.pooling]
        if self.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector.astype(np.float32)


def load(folder: str | Path) -> NumpyBert | None:
    """A NumpyBert for a sentence-transformers folder it can run exactly, else None."""
    folder = Path(folder)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        if modules[0].get("path") or config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            return None
        if config.get("position_embedding_type", "absolute") != "absolute":
            return None
        pooling_cfg = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = [mode for mode in ("mean", "cls", "max")
                 if pooling_cfg.get(f"pooling_mode_{mode}_tokens" if mode != "cls" else "pooling_mode_cls_token")]
        other = [key for key, on in pooling_cfg.items() if key.startswith("pooling_mode") and on
                 and key not in ("pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens")]
        if len(modes) != 1 or other:
            return None
        max_len = 512
        st_config = folder / "sentence_bert_config.json"
        if st_config.exists():
            settings = json.loads(st_config.read_text())
            if settings.get("do_lower_case"):
                return None
            max_len = int(settings.get("max_seq_length") or 512)
        if not (folder / "tokenizer.json").exists() or not (folder / "model.safetensors").exists():
            return None
        return NumpyBert(folder, config, modes[0], kinds[-1] == "Normalize", max_len)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
