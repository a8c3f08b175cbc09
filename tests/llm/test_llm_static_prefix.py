"""StaticPrefixCache: the same greedy tokens as the plain DynamicCache loop, rewinds, grows, refuses."""

from __future__ import annotations

import pytest

from infuse.errors import CacheError


@pytest.fixture(scope="module")
def model_and_prefix(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    from infuse.llm.decoding import forward_kwargs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    torch.manual_seed(2)
    prefix = torch.randint(5, 300, (1, 300))
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(input_ids=prefix, **forward_kwargs(model, cache))
    layers = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    return model, layers


def _greedy(stepper, question, count):
    logits = stepper.prefill(question)
    tokens = []
    for _ in range(count):
        tokens.append(int(logits.argmax()))
        logits = stepper.step(tokens[-1])
    return tokens


def _dynamic_answer(model, layers, question, count):
    from transformers import DynamicCache

    from infuse.llm.decoding import CacheStepper

    cache = DynamicCache(config=model.config)
    for index, (keys, values) in enumerate(layers):
        cache.update(keys.clone(), values.clone(), index)
    return _greedy(CacheStepper(model, cache), question, count)


@pytest.mark.parametrize(("split_kv", "buckets"), [("never", ()), ("always", (4, 8, 16))])
def test_static_prefix_answers_like_the_dynamic_cache_and_rewinds(
    model_and_prefix, split_kv, buckets
):
    """Also with questions padded to bucket lengths (what the CUDA graphs of prefill run)."""
    import torch

    from infuse.llm.attention import use_packed_gqa_attention
    from infuse.llm.static_prefix import StaticPrefixCache

    model, layers = model_and_prefix
    questions = [[11, 12, 13, 14, 15, 16, 17], [40, 41], [99] * 12, [5] * 20, [6, 7, 8, 9]]
    expected = [_dynamic_answer(model, layers, question, 20) for question in questions]
    engine = StaticPrefixCache.from_layers(
        model, layers, room=64, cuda_graph=False, prefill_buckets=buckets
    )
    use_packed_gqa_attention(model, split_kv=split_kv)
    assert engine.prefix_length == engine.length == 300 and engine.capacity % 256 == 0
    for _round in range(2):
        for question, tokens in zip(questions, expected):
            with torch.inference_mode():  # the padding holds whatever came before: any token
                for padded in engine._bucket_ids.values():
                    padded.fill_(299)
            assert _greedy(engine, question, 20) == tokens
            assert engine.length == 300 + len(question) + 20
            engine.rewind()
            assert engine.length == 300
            assert all(int(layer.cumulative_length) == 300 for layer in engine.cache.layers)
    for (keys, values), (saved_keys, saved_values) in zip(engine.prefix_layers(), layers):
        assert keys.shape == saved_keys.shape and bool((keys == saved_keys).all())
        assert bool((values == saved_values).all())
    use_packed_gqa_attention(model)


def test_static_prefix_refuses_to_run_past_its_room_and_grows_on_reserve(model_and_prefix):
    from infuse.llm.static_prefix import StaticPrefixCache

    model, layers = model_and_prefix
    engine = StaticPrefixCache.from_layers(model, layers, room=10, cuda_graph=False)
    assert engine.capacity == 512
    expected = _dynamic_answer(model, layers, [7] * 5, 250)
    with pytest.raises(CacheError, match="no room for 1 more.*reserve"):
        _greedy(engine, [7] * 5, 250)
    engine.rewind()
    engine.reserve(300 + 5 + 250)
    assert engine.capacity >= 555 and engine.prefix_length == 300
    assert _greedy(engine, [7] * 5, 250) == expected


def test_sliding_window_models_are_named_unsupported():
    from transformers import MistralConfig, MistralForCausalLM

    from infuse.llm.static_prefix import StaticPrefixCache, static_prefix_unsupported

    config = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=16,
    )
    model = MistralForCausalLM(config)
    assert "sliding-window" in static_prefix_unsupported(model)
    with pytest.raises(CacheError, match="does not fit this model: it uses sliding-window"):
        StaticPrefixCache(model, 64)


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="CUDA graphs need a CUDA device"
)
def test_cuda_graph_steps_give_the_eager_steps_tokens(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from infuse.llm.static_prefix import StaticPrefixCache

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).cuda().eval()
    torch.manual_seed(3)
    prefix = torch.randint(5, 300, (1, 2000)).tolist()[0]
    eager = StaticPrefixCache(model, 2100, cuda_graph=False)
    eager.prefill(prefix)
    eager.prefix_length = 2000
    graphed = StaticPrefixCache.from_layers(model, eager.prefix_layers(), room=100)
    graphed.warm_up()
    for question in ([5, 6, 7], [9] * 9):
        assert _greedy(graphed, question, 30) == _greedy(eager, question, 30)
        graphed.rewind(), eager.rewind()
