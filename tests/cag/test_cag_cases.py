"""CAG never silently wrong (#21): another model's cache is refused unless told to rebuild, a
damaged cache file is a named CacheError, and lengths are checked before any generation."""

from __future__ import annotations

import json

import pytest
from at_once import answer_at_once

from infuse.cag import CagSession, build_cache
from infuse.cag.store import KV_FILE, MANIFEST_FILE
from infuse.cli import main
from infuse.errors import CacheError, ConfigError, ContextTooLongError


@pytest.fixture()
def cache_dir(tmp_path, long_context_model_dir, knowledge_file):
    folder = tmp_path / "cache"
    build_cache([knowledge_file], str(long_context_model_dir), folder, device="cpu")
    return folder


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_building_for_another_model_into_a_cache_refuses_unless_rebuild(
    cache_dir, other_model_dir, long_context_model_dir, knowledge_file
):
    before = _snapshot(cache_dir)
    with pytest.raises(CacheError, match=r"built for model .* not .*--rebuild"):
        build_cache([knowledge_file], str(other_model_dir), cache_dir, device="cpu")
    assert _snapshot(cache_dir) == before  # nothing touched
    # The same model again is a plain rebuild (e.g. after the files changed): allowed.
    build_cache([knowledge_file], str(long_context_model_dir), cache_dir, device="cpu")
    manifest = build_cache(
        [knowledge_file], str(other_model_dir), cache_dir, device="cpu", rebuild=True
    )
    assert manifest.model == str(other_model_dir)
    assert json.loads((cache_dir / MANIFEST_FILE).read_text())["model"] == str(other_model_dir)


def test_cli_build_for_another_model_is_one_line_and_rebuild_replaces(
    cache_dir, other_model_dir, knowledge_file, capsys
):
    before = _snapshot(cache_dir)
    args = ["cag", "build", str(knowledge_file), "--model", str(other_model_dir),
            "--output", str(cache_dir), "--device", "cpu"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "--rebuild" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot(cache_dir) == before
    assert main([*args, "--rebuild", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["model"] == str(
        other_model_dir
    )


def test_a_folder_holding_other_files_is_never_written(tmp_path, long_context_model_dir,
                                                       knowledge_file):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    for rebuild in (False, True):
        with pytest.raises(CacheError, match=r"holds files that are not a CAG cache \(README.md"):
            build_cache([knowledge_file], str(long_context_model_dir), folder, rebuild=rebuild)
    assert [p.name for p in folder.iterdir()] == ["README.md"]
    assert (folder / "README.md").read_text() == "my notes"


def test_opening_a_cache_with_another_model_refuses_instead_of_overwriting(
    cache_dir, other_model_dir
):
    before = _snapshot(cache_dir)
    with pytest.raises(CacheError, match=r"built for model .*--rebuild"):
        CagSession.open(cache_dir, model=str(other_model_dir))
    assert _snapshot(cache_dir) == before


@pytest.mark.parametrize(
    "damage", ["truncated", "garbage data", "zeroed data", "garbage header", "emptied"]
)
def test_a_damaged_kv_file_is_a_named_cache_error(cache_dir, damage, capsys):
    path = cache_dir / KV_FILE
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "garbage data":
        middle = len(data) // 2
        data[middle : middle + 4096] = b"\xff" * 4096
        path.write_bytes(bytes(data))
    elif damage == "zeroed data":  # finite values: only the checksum can tell
        middle = len(data) // 2
        data[middle : middle + 4096] = b"\0" * 4096
        path.write_bytes(bytes(data))
    elif damage == "garbage header":
        data[:64] = b"\x07" * 64
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"")
    with pytest.raises(CacheError, match=r"kv.safetensors is damaged .*--rebuild"):
        CagSession.open(cache_dir, device="cpu")
    assert main(["ask", "How long is the refund window?", "--mode", "cag", "--cache",
                 str(cache_dir)]) == 1
    err = capsys.readouterr().err
    assert "kv.safetensors is damaged" in err and "Traceback" not in err


def test_a_cache_saved_before_checksums_is_still_checked_for_garbage(cache_dir):
    manifest = json.loads((cache_dir / MANIFEST_FILE).read_text())
    del manifest["facts"]["kv_crc32"]
    (cache_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert CagSession.open(cache_dir, device="cpu").loaded_from_disk
    data = bytearray((cache_dir / KV_FILE).read_bytes())
    data[-4096:] = b"\xff" * 4096
    (cache_dir / KV_FILE).write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"damaged \(layers\.\d+\.values holds NaN or infinity"):
        CagSession.open(cache_dir, device="cpu")


def test_knowledge_too_long_is_a_typed_error_with_the_numbers(tiny_model_dir, tmp_path):
    big = tmp_path / "big.md"
    big.write_text("The refund window is 45 days. " * 60)
    with pytest.raises(ContextTooLongError) as caught:
        build_cache([big], str(tiny_model_dir), tmp_path / "cache", device="cpu")
    error = caught.value
    assert isinstance(error, CacheError) and error.context_window == 512
    assert error.knowledge_tokens + 256 + 512 > 512 and error.knowledge_tokens > 100
    assert not (tmp_path / "cache" / MANIFEST_FILE).exists()


def test_a_question_longer_than_the_context_is_refused_before_generating(
    long_context_model_dir, cache_dir, monkeypatch
):
    session = CagSession.open(cache_dir, device="cpu")
    generated: list[int] = []
    real = session.chat.generate_from_ids
    monkeypatch.setattr(
        session.chat, "generate_from_ids", lambda *a, **k: generated.append(1) or real(*a, **k)
    )
    with pytest.raises(ContextTooLongError, match=r"2,048-token context") as caught:
        session.answer("Why? " * 2000)
    assert caught.value.question_tokens > 2048 - session.knowledge_tokens
    assert caught.value.knowledge_tokens == session.knowledge_tokens
    assert generated == [] and session.cache_length == session.knowledge_tokens
    assert session.answer("How long is the refund window?", max_new_tokens=3).text is not None
    assert generated == [1]


def test_bad_rooms_are_refused_up_front(long_context_model_dir, knowledge_file, tmp_path):
    with pytest.raises(ConfigError, match=r"--answer-room -5: must be at least 1"):
        build_cache([knowledge_file], str(long_context_model_dir), tmp_path / "c", answer_room=-5)


def test_two_threads_share_one_cache_and_get_the_answers_they_get_alone(cache_dir):
    session = CagSession.open(cache_dir, device="cpu")
    questions = ["How long is the refund window?", "Where do rockets ship from?"]
    alone = {q: session.answer(q, max_new_tokens=12).facts["answer_token_ids"] for q in questions}
    for _round in range(3):
        together = answer_at_once(
            lambda q: session.answer(q, max_new_tokens=12).facts["answer_token_ids"], questions
        )
        assert together == alone
        assert session.cache_length == session.knowledge_tokens


def test_history_is_rendered_after_the_knowledge_token_for_token(cache_dir):
    from infuse.llm.local import encode_rendered, render_messages

    session = CagSession.open(cache_dir, device="cpu")
    history = [
        {"role": "user", "content": "What does Acme sell?"},
        {"role": "assistant", "content": "Rockets and anvils."},
    ]
    question = "Where do they ship from?"
    cached = session.answer(question, history=history, max_new_tokens=10)
    messages = [{"role": "system", "content": session.prefix.system}, *history,
                {"role": "user", "content": question}]
    full = encode_rendered(session.chat.tokenizer, render_messages(session.chat.tokenizer, messages))
    uncached = session.chat.generate_from_ids(full, session.chat.new_cache(), max_new_tokens=10)
    assert cached.facts["answer_token_ids"] == uncached.extra["token_ids"]
    assert cached.facts["question_tokens"] == len(full) - session.knowledge_tokens
