"""The packed-GQA attention gives the logits transformers' SDPA gives, cached or not."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("cache_kind", ["dynamic", "static"])
def test_packed_gqa_matches_sdpa_with_a_cached_prefix(tiny_model_dir, cache_kind):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache, StaticCache

    from infuse.llm.attention import ATTENTION_NAME, use_packed_gqa_attention
    from infuse.llm.decoding import forward_kwargs

    reference = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa"
    ).eval()
    packed = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    use_packed_gqa_attention(packed)
    assert packed.config._attn_implementation == ATTENTION_NAME
    assert packed.config.num_attention_heads // packed.config.num_key_value_heads == 2

    def run(model):
        if cache_kind == "static":
            cache = StaticCache(config=model.config, max_cache_len=64)
        else:
            cache = DynamicCache(config=model.config)
        torch.manual_seed(0)
        prefix = torch.randint(5, 300, (1, 30))
        question = torch.randint(5, 300, (1, 7))
        logits = []
        with torch.inference_mode():
            for ids in (prefix, question, question[:, :1], question[:, 1:2]):
                kwargs = forward_kwargs(model, cache)
                kwargs.pop("logits_to_keep", None)
                logits.append(model(input_ids=ids, **kwargs).logits)
        return logits

    for expected, got in zip(run(reference), run(packed)):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
