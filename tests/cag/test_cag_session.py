"""CAG with a local model: same answers as without a cache, a cache that never grows, reloads, staleness."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infuse.cag import CagSession, build_cache
from infuse.cag import answer as cag_answer
from infuse.cag.knowledge import knowledge_text, read_knowledge_files, system_message
from infuse.errors import CacheError, DataError
from infuse.llm.loading import load_local_chat_model
from infuse.llm.local import encode_rendered, render_messages

QUESTIONS = [
    "How long is the refund window?",
    "What does Acme sell?",
    "Where do rockets ship from?",
]


@pytest.fixture(scope="module")
def chat(long_context_model_dir):
    return load_local_chat_model(str(long_context_model_dir), device="cpu")


@pytest.fixture()
def session(chat, knowledge_file):
    system = system_message(knowledge_text(read_knowledge_files([knowledge_file])))
    return CagSession.build(chat, system, sources=[str(knowledge_file)])


def test_greedy_cag_answer_is_token_for_token_the_uncached_answer(chat, session):
    import torch

    for question in QUESTIONS:
        cached = session.answer(question, max_new_tokens=16)
        full_ids = session.prefix.full_prompt_ids(chat.tokenizer, question)
        # The split prefix + question is the very token sequence the whole prompt encodes to.
        messages = [
            {"role": "system", "content": session.prefix.system},
            {"role": "user", "content": question},
        ]
        assert full_ids == encode_rendered(
            chat.tokenizer, render_messages(chat.tokenizer, messages)
        )
        uncached = chat.generate_from_ids(full_ids, chat.new_cache(), max_new_tokens=16)
        reference = chat.model.generate(
            torch.tensor([full_ids]),
            attention_mask=torch.ones(1, len(full_ids), dtype=torch.long),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=sorted(chat.end_ids),
            pad_token_id=chat.tokenizer.pad_token_id,
        )[0, len(full_ids) :].tolist()
        reference = [token for token in reference if token not in chat.end_ids]
        assert cached.facts["answer_token_ids"] == uncached.extra["token_ids"] == reference
        assert cached.text == uncached.text
        assert len(reference) > 0


def test_cache_is_back_to_the_knowledge_after_every_question(session):
    import torch

    knowledge = session.knowledge_tokens
    assert knowledge > 30 and session.cache_length == knowledge
    keys_before = session.cache.layers[0].keys.clone()
    for question in QUESTIONS * 2:
        answer = session.answer(question, max_new_tokens=12)
        assert answer.facts["cache_length_after"] == knowledge
        assert session.cache_length == knowledge
    assert all(layer.keys.shape[-2] == knowledge for layer in session.cache.layers)
    assert torch.equal(session.cache.layers[0].keys, keys_before)


def test_answer_reports_timings_and_cache_facts(session):
    pieces: list[str] = []
    answer = session.answer(QUESTIONS[0], max_new_tokens=8, on_token=pieces.append)
    assert answer.method == "cag"
    assert "".join(pieces) == answer.text
    assert 0 < answer.timings["time_to_first_token_s"] <= answer.timings["total_s"]
    assert answer.facts["knowledge_tokens"] == session.knowledge_tokens
    assert answer.facts["cache_loaded_from_disk"] is False
    payload = answer.to_dict()
    assert payload["answer"] == answer.text and "timings" in payload and "facts" in payload


def test_saved_cache_reloads_in_a_new_process_with_the_same_answer(
    long_context_model_dir, knowledge_file, tmp_path
):
    cache_dir = tmp_path / "cache"
    manifest = build_cache([knowledge_file], str(long_context_model_dir), cache_dir, device="cpu")
    assert (cache_dir / "kv.safetensors").exists() and manifest.facts["kv_bytes"] > 0
    here = CagSession.open(cache_dir, device="cpu").answer(QUESTIONS[0], max_new_tokens=12)
    script = (
        "import json, sys\n"
        "from infuse.cag import answer\n"
        f"answer = answer({QUESTIONS[0]!r}, sys.argv[1], max_new_tokens=12)\n"
        "print(json.dumps(answer.to_dict()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(cache_dir)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    there = json.loads(result.stdout.strip().splitlines()[-1])
    assert there["facts"]["cache_loaded_from_disk"] is True
    assert there["facts"]["knowledge_tokens"] == manifest.knowledge_tokens
    assert there["facts"]["answer_token_ids"] == here.facts["answer_token_ids"]
    assert there["answer"] == here.text


def test_changed_knowledge_makes_the_cache_stale(long_context_model_dir, knowledge_file, tmp_path):
    cache_dir = tmp_path / "cache"
    build_cache([knowledge_file], str(long_context_model_dir), cache_dir, device="cpu")
    knowledge_file.write_text(knowledge_file.read_text() + "\nAnvils are blue.\n")
    with pytest.raises(
        CacheError, match=r"stale: knowledge or instructions changed.*infuse cag build"
    ):
        CagSession.open(cache_dir, rebuild_stale=False)
    rebuilt = CagSession.open(cache_dir)
    assert rebuilt.loaded_from_disk is False
    assert "Anvils are blue." in rebuilt.prefix.system
    answer = rebuilt.answer(QUESTIONS[0], max_new_tokens=4)
    assert answer.facts["cache_rebuilt_because"] == ["knowledge or instructions changed"]
    # The rebuilt cache was saved: the next open loads it from disk, no longer stale.
    again = CagSession.open(cache_dir, rebuild_stale=False)
    assert again.loaded_from_disk and again.knowledge_tokens == rebuilt.knowledge_tokens


def test_another_model_makes_the_cache_stale(
    long_context_model_dir, other_model_dir, knowledge_file, tmp_path
):
    cache_dir = tmp_path / "cache"
    build_cache([knowledge_file], str(long_context_model_dir), cache_dir, device="cpu")
    with pytest.raises(CacheError, match=r"built for model .*--rebuild"):
        CagSession.open(cache_dir, model=str(other_model_dir))
    with pytest.raises(CacheError, match=r"model changed \(.*weights_probe_sha256"):
        CagSession.open(cache_dir, model=str(other_model_dir), rebuild_stale=False, rebuild=True)


def test_knowledge_that_does_not_fit_names_the_numbers(tiny_model_dir, tmp_path):
    big = tmp_path / "big.md"
    big.write_text("The refund window is 45 days. " * 60)
    with pytest.raises(CacheError, match=r"tokens.*512-token context window.*RAG") as caught:
        build_cache([big], str(tiny_model_dir), tmp_path / "cache", device="cpu")
    assert "256 for a question" in str(caught.value) and "512 for the answer" in str(caught.value)
    assert not (tmp_path / "cache" / "manifest.json").exists()


def test_missing_cache_and_missing_sources_are_cache_errors(
    long_context_model_dir, knowledge_file, tmp_path
):
    with pytest.raises(CacheError, match="No CAG cache in"):
        cag_answer("anything", tmp_path / "nowhere")
    cache_dir = tmp_path / "cache"
    build_cache([knowledge_file], str(long_context_model_dir), cache_dir, device="cpu")
    knowledge_file.unlink()
    with pytest.raises(CacheError, match="knowledge files this cache was built from are gone"):
        CagSession.open(cache_dir)


def test_unreadable_knowledge_file_fails_before_loading_a_model(tmp_path):
    binary = tmp_path / "blob.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00bad")
    with pytest.raises(DataError, match="blob.md: binary file"):
        build_cache([binary], "no-such-model", tmp_path / "cache")


def test_fast_path_gives_the_exact_path_answers_and_keeps_the_cache_at_the_knowledge(
    chat, knowledge_file
):
    """fast=True on CPU: the static cache (no CUDA graph there) answers like the DynamicCache."""
    system = system_message(knowledge_text(read_knowledge_files([knowledge_file])))
    exact = CagSession.build(chat, system, fast=False)
    fast = CagSession.build(chat, system, fast=True, question_room=8, answer_room=8)
    assert exact.decoding == "dynamic cache" and fast.decoding == "static cache"
    knowledge = fast.knowledge_tokens
    assert fast.cache_length == knowledge == exact.knowledge_tokens
    # Room for 16 tokens after the knowledge: a 40-token answer makes the cache grow first.
    for question, tokens in [(QUESTIONS[0], 40), (QUESTIONS[1], 12), (QUESTIONS[2], 12)] * 2:
        expected = exact.answer(question, max_new_tokens=tokens)
        got = fast.answer(question, max_new_tokens=tokens)
        assert got.facts["answer_token_ids"] == expected.facts["answer_token_ids"]
        assert got.text == expected.text and got.facts["decoding"] == "static cache"
        assert got.facts["cache_length_after"] == knowledge == fast.cache_length
    assert fast.engine.capacity >= knowledge + 40


def test_fast_session_saves_and_reloads_with_the_same_answer(chat, knowledge_file, tmp_path):
    system = system_message(knowledge_text(read_knowledge_files([knowledge_file])))
    fast = CagSession.build(chat, system, sources=[str(knowledge_file)], fast=True)
    answer = fast.answer(QUESTIONS[1], max_new_tokens=10)
    fast.save(tmp_path / "cache")
    for reload_fast in (True, False):
        again = CagSession.open(tmp_path / "cache", model=chat, fast=reload_fast)
        assert again.loaded_from_disk and again.knowledge_tokens == fast.knowledge_tokens
        got = again.answer(QUESTIONS[1], max_new_tokens=10)
        assert got.facts["answer_token_ids"] == answer.facts["answer_token_ids"]


def test_fast_is_off_by_default_on_cpu_and_refused_for_sliding_window_models(chat):
    from infuse.cag.session import resolve_fast
    from infuse.llm.local import LocalChatModel

    assert resolve_fast(chat, None) is False and resolve_fast(chat, True) is True
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=16,
    )
    sliding = LocalChatModel(MistralForCausalLM(config), chat.tokenizer, name="sliding")
    assert resolve_fast(sliding, None) is False
    with pytest.raises(CacheError, match="fast=True needs a static cache.*sliding.*fast=False"):
        resolve_fast(sliding, True)
