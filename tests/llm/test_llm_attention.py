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


def _eager_reference(query, key, value, mask):
    """Textbook attention in float64: keys repeated per group, masked scores, softmax."""
    import torch

    groups = query.shape[1] // key.shape[1]
    key = key.double().repeat_interleave(groups, dim=1)
    value = value.double().repeat_interleave(groups, dim=1)
    scores = query.double() @ key.transpose(-1, -2) / query.shape[-1] ** 0.5
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ value


@pytest.mark.parametrize(
    ("groups", "q_length", "past", "chunk"),
    [(4, 5, 600, None), (4, 1, 777, 64), (1, 7, 300, 16), (4, 20, 1000, 256), (2, 3, 40, 1024)],
)
def test_split_kv_attention_matches_eager_attention(groups, q_length, past, chunk):
    """Causal among the question tokens, and a cropped cache: stale keys past the length are masked."""
    import torch

    from infuse.llm.attention import packed_bias, split_kv_attention

    generator = torch.Generator().manual_seed(past + q_length)
    kv_heads, head_dim, capacity = 2, 16, past + q_length + 50
    query = torch.randn(1, kv_heads * groups, q_length, head_dim, generator=generator)
    key = torch.randn(1, kv_heads, capacity, head_dim, generator=generator)
    value = torch.randn(1, kv_heads, capacity, head_dim, generator=generator)
    # Positions past the question hold stale keys of an earlier, longer question: huge on purpose.
    key[:, :, past + q_length :] *= 1e3
    positions = torch.arange(past, past + q_length)
    mask = (torch.arange(capacity)[None, :] <= positions[:, None])[None, None]
    expected = _eager_reference(query, key, value, mask)

    packed = query.reshape(1, kv_heads, groups * q_length, head_dim)
    for attention_mask in (mask, torch.where(mask, 0.0, torch.finfo(torch.float32).min)):
        bias = packed_bias(attention_mask, groups, query.dtype)
        got = split_kv_attention(packed, key, value, bias, None, chunk=chunk)
        got = got.reshape(1, kv_heads * groups, q_length, head_dim)
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)


def test_split_kv_attention_in_bfloat16_is_within_bfloat16_error():
    import torch

    from infuse.llm.attention import packed_bias, split_kv_attention

    generator = torch.Generator().manual_seed(7)
    query = torch.randn(1, 8, 4, 64, generator=generator)
    key = torch.randn(1, 2, 2048, 64, generator=generator)
    value = torch.randn(1, 2, 2048, 64, generator=generator)
    mask = (torch.arange(2048)[None, :] <= torch.arange(1900, 1904)[:, None])[None, None]
    expected = _eager_reference(query, key, value, mask)
    packed = query.bfloat16().reshape(1, 2, 16, 64)
    bias = packed_bias(mask, 4, torch.bfloat16)
    got = split_kv_attention(packed, key.bfloat16(), value.bfloat16(), bias, None, chunk=256)
    error = (got.reshape(expected.shape).double() - expected).norm() / expected.norm()
    assert got.dtype == torch.bfloat16 and error < 1e-2


def test_split_chunk_fills_the_gpu_and_prefers_chunks_that_divide_the_cache():
    from infuse.llm.attention import CHUNK_GRANULE, split_chunk

    for keys in (1024, 5120, 16_640, 17_152, 33_536, 66_304, 66_561, 131_072):
        chunk = split_chunk(keys, kv_heads=8)
        assert chunk % CHUNK_GRANULE == 0
        assert keys // chunk * 8 >= 132 or chunk == CHUNK_GRANULE, (keys, chunk)
    assert split_chunk(66_304, kv_heads=8) == 1792  # 37 chunks, none ragged
    assert split_chunk(131_072, kv_heads=8) == 4096
    assert split_chunk(33_536, kv_heads=8) == 1024  # 131 x 256: nothing near divides, ragged


@pytest.mark.parametrize("split_kv", ["never", "always"])
def test_model_logits_with_split_kv_match_sdpa_after_a_crop(tiny_model_dir, split_kv):
    """A static cache cropped back (stale entries left behind) and refilled: same logits as SDPA."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from infuse.llm.attention import use_packed_gqa_attention
    from infuse.llm.static_prefix import StaticPrefixCache

    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    reference.eval(), model.eval()
    torch.manual_seed(1)
    prefix = torch.randint(5, 300, (1, 600))  # 768 static slots: 3 chunks
    first, second = torch.randint(5, 300, (9,)).tolist(), torch.randint(5, 300, (6,)).tolist()
    cache = DynamicCache(config=reference.config)
    with torch.inference_mode():
        reference(input_ids=prefix, past_key_values=cache, use_cache=True)
        layers = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        expected = reference(
            input_ids=torch.tensor([second]), past_key_values=cache, use_cache=True
        ).logits[:, -1]
    engine = StaticPrefixCache.from_layers(model, layers, room=40, cuda_graph=False)
    use_packed_gqa_attention(model, split_kv=split_kv)
    engine.prefill(first)  # a longer question first: its entries stay behind after the rewind
    engine.rewind()
    got = engine.prefill(second)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
