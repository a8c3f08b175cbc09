"""Per-token cost of constrained JSON decoding: xgrammar vs lm-format-enforcer vs the model step.

    python bench/structured_output.py [--model smollm2] [--decode-tokens 24]

Both libraries are driven through the same moves over the same token sequence (a valid answer
to the schema, tokenized by the model's tokenizer): before each token, compute the allowed set
and mask a logits row of the model's vocabulary; then accept the token. That is exactly the work
constrained decoding adds per token, measured without the model's own noise. The baseline is
the model's own greedy decode step (`infuse.llm.decoding`, unconstrained) measured in the same
run, so the table says what share of a token's time the constraint costs. Finally infuse's
constrained decode runs end to end and its JSON is validated.

lm-format-enforcer is optional here (`pip install lm-format-enforcer`); infuse uses xgrammar.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 60},
        "kind": {"enum": ["policy", "product", "person"]},
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "days": {"type": "integer"},
                },
                "required": ["name", "days"],
            },
            "maxItems": 3,
        },
    },
    "required": ["title", "kind", "facts"],
}

ANSWER = {
    "title": "Acme Corp refund policy",
    "kind": "policy",
    "facts": [{"name": "refund window", "days": 45}, {"name": "shipping time", "days": 3}],
}

MESSAGES = [
    {"role": "system", "content": "Acme Corp's refund window is 45 days. Shipping takes 3 days."},
    {"role": "user", "content": "Describe Acme's refund policy as JSON."},
]


def time_xgrammar(tokenizer, vocab_size: int, end_ids: set[int], token_ids: list[int]):
    import torch

    from infuse.llm.structured import ConstraintBuilder

    started = time.perf_counter()
    constraint = ConstraintBuilder(tokenizer, vocab_size, end_ids).start(SCHEMA)
    setup = time.perf_counter() - started
    return setup, _drive(constraint.mask, constraint.accept, token_ids, vocab_size, torch)


class Enforcer:
    """lm-format-enforcer's TokenEnforcer driven like infuse's constraint."""

    def __init__(self, tokenizer_data, schema) -> None:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        self.enforcer = TokenEnforcer(tokenizer_data, JsonSchemaParser(schema))
        self.sequence: list[int] = [1]  # a one-token "prompt"

    def mask(self, logits) -> None:
        import torch

        allowed = self.enforcer.get_allowed_tokens(self.sequence)
        allowed = getattr(allowed, "allowed_tokens", allowed)
        keep = torch.full_like(logits, float("-inf"))
        keep[:, allowed] = 0
        logits += keep

    def accept(self, token_id: int) -> None:
        self.sequence.append(token_id)


def time_enforcer(tokenizer, vocab_size: int, token_ids: list[int]):
    import sys

    import torch
    import transformers.tokenization_utils_base

    # lm-format-enforcer 0.11.3 imports `transformers.tokenization_utils`, which transformers 5
    # removed: alias it so its integration imports at all (one reason infuse does not use it).
    sys.modules.setdefault("transformers.tokenization_utils", transformers.tokenization_utils_base)
    from lmformatenforcer.integrations.transformers import build_token_enforcer_tokenizer_data

    started = time.perf_counter()
    enforcer = Enforcer(build_token_enforcer_tokenizer_data(tokenizer), SCHEMA)
    setup = time.perf_counter() - started
    return setup, _drive(enforcer.mask, enforcer.accept, token_ids, vocab_size, torch)


def _drive(mask, accept, token_ids, vocab_size, torch) -> list[float]:
    """Seconds per token of mask + accept over `token_ids`; checks each token stays allowed."""
    times = []
    for token_id in token_ids:
        logits = torch.zeros(1, vocab_size)
        started = time.perf_counter()
        mask(logits)
        if logits[0, token_id] == float("-inf"):
            raise SystemExit(f"token {token_id} of the valid answer was masked")
        accept(token_id)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="chat model (default: the packaged one)")
    parser.add_argument("--decode-tokens", type=int, default=24)
    args = parser.parse_args()

    import importlib.metadata as metadata

    import torch

    from infuse.llm.decoding import decode
    from infuse.llm.loading import load_local_chat_model
    from infuse.llm.local import encode_rendered, render_messages
    from infuse.llm.structured import validate_json
    from infuse.models import DEFAULT_MODEL

    chat = load_local_chat_model(args.model or DEFAULT_MODEL, device="cpu")
    tokenizer = chat.tokenizer
    vocab = chat.model.get_output_embeddings().weight.shape[0]
    token_ids = tokenizer(json.dumps(ANSWER), add_special_tokens=False)["input_ids"]
    rows = []

    setup, times = time_xgrammar(tokenizer, vocab, chat.end_ids, token_ids)
    rows.append(("xgrammar", setup, times))
    try:
        setup, times = time_enforcer(tokenizer, vocab, token_ids)
        rows.append(("lm-format-enforcer", setup, times))
    except ImportError:
        rows.append(("lm-format-enforcer (not installed)", None, []))

    prompt_ids = encode_rendered(tokenizer, render_messages(tokenizer, MESSAGES))
    plain = decode(chat.model, tokenizer, prompt_ids, chat.new_cache(),
                   max_new_tokens=args.decode_tokens, end_ids=chat.end_ids, repetition_window=None)
    step_ms = 1000 * plain.total_s / max(len(plain.token_ids), 1)
    constrained = chat.generate(MESSAGES, max_new_tokens=200, response_format=SCHEMA)
    value = validate_json(constrained.text, SCHEMA, source="bench", finish_reason=None)

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    print(f"# Constrained JSON decoding on {chat.name} ({vocab} tokens), {len(token_ids)}-token answer")
    print(f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, load average "
          f"{os.getloadavg()[0]:.1f} (the machine is shared); torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), xgrammar {version('xgrammar')}, "
          f"lm-format-enforcer {version('lm-format-enforcer')}")
    print()
    print("| per token | set-up s | mean ms | p95 ms | share of a model step |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| model decode step, unconstrained (baseline) | - | {step_ms:.1f} | - | 100% |")
    for name, setup, times in rows:
        if not times:
            print(f"| {name} | - | - | - | - |")
            continue
        mean = 1000 * statistics.mean(times)
        p95 = 1000 * sorted(times)[int(0.95 * (len(times) - 1))]
        print(f"| {name}: mask + accept | {setup:.2f} | {mean:.2f} | {p95:.2f} | "
              f"{100 * mean / step_ms:.1f}% |")
    print()
    print(f"infuse constrained decode end to end: {constrained.completion_tokens} tokens in "
          f"{constrained.total_s:.1f} s, valid: {json.dumps(value)[:120]}")


if __name__ == "__main__":
    main()
