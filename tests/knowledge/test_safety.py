"""Nothing lost, nothing silently wrong (issue 21): a mistyped --kb, two `kb add` at once, a
sync while a drive is unmounted, damaged LanceDB files, out-of-range options, symlinks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infuse.cli import main
from infuse.errors import ConfigError, StoreError
from infuse.knowledge import Document, KnowledgeBase
from infuse.knowledge.kb import SyncRefusedError
from infuse.knowledge.stores import open_store

REPO = Path(__file__).resolve().parents[2]


def write_docs(folder: Path, count: int, words: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        paragraphs = [
            f"Document {index} part {part}: " + " ".join(["refund shipping policy"] * words)
            for part in range(2)
        ]
        path = folder / f"doc{index:03}.md"
        path.write_text(f"# Doc {index}\n\n" + "\n\n".join(paragraphs))
        paths.append(path)
    return paths


def one_copy_of_each_chunk(location: str) -> tuple[int, int]:
    """Chunks stored == the chunks the documents say they have (a copy would add rows)."""
    with open_store(location) as store:
        records = store.documents()
        stored = store.count()
    assert stored == sum(record.chunk_count for record in records)
    return len(records), stored


# a location that holds no knowledge base -------------------------------------------------
def test_missing_kb_is_an_error_and_nothing_is_created(tmp_path):
    missing = tmp_path / "mistyped"
    with pytest.raises(StoreError, match=f"No knowledge base at {missing}"):
        KnowledgeBase(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreError, match="No knowledge base"):
        KnowledgeBase(empty)
    assert not missing.exists() and list(empty.iterdir()) == []


def test_cli_read_commands_refuse_a_mistyped_kb(tmp_path, capsys):
    missing = tmp_path / "mistyped"
    for command in (
        ["kb", "search", "refund", "--kb", str(missing)],
        ["kb", "list", "--kb", str(missing)],
        ["kb", "sync", "--kb", str(missing)],
        ["kb", "show", "x", "--kb", str(missing)],
        ["kb", "remove", "x.md", "--kb", str(missing)],
        ["ask", "What is the refund window?", "--kb", str(missing)],
    ):
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert f"No knowledge base at {missing}" in err, command
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not missing.exists()


def test_missing_kb_on_postgres_is_an_error(pg_url):
    with pytest.raises(StoreError, match="No knowledge base at"):
        KnowledgeBase(pg_url)
    with KnowledgeBase(pg_url, create=True):
        pass
    with KnowledgeBase(pg_url) as reopened:  # now it exists (empty)
        assert reopened.documents() == []


def test_add_refuses_a_folder_of_other_files(tmp_path, tiny_embedder):
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "README.md").write_text("mine")
    with pytest.raises(StoreError, match="folder of other files"):
        KnowledgeBase(folder, create=True, embedder=tiny_embedder)
    assert [entry.name for entry in folder.iterdir()] == ["README.md"]


# two writers at once ---------------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_kb_add_leaves_one_copy_of_each_chunk(
    store_location, tiny_embedder_dir, tmp_path
):
    folder = tmp_path / "docs"
    paths = write_docs(folder, 30)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-m",
        "infuse",
        "kb",
        "add",
        str(folder),
        "--kb",
        store_location,
        "--embedder",
        str(tiny_embedder_dir),
        "--chunk-tokens",
        "24",
        "--overlap-tokens",
        "0",
        "--json",
    ]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    added = sorted(doc_id for report in reports for doc_id in report["added"])
    assert added == sorted(str(path) for path in paths)  # each document added by exactly one
    assert all(report["updated"] == [] for report in reports)
    documents, chunks = one_copy_of_each_chunk(store_location)
    assert documents == 30 and chunks >= 60


def test_writes_are_keyed_on_chunk_id(store_location, tiny_embedder):
    """Even a writer that skipped the lock cannot store a chunk twice."""
    from infuse.knowledge.chunking import chunk_document

    document = Document(
        text="# A\n\n" + "Shipping takes three days. Refunds take five days. " * 6, source="n-1"
    )
    chunks = chunk_document(document, max_tokens=16, overlap_tokens=0)
    vectors = tiny_embedder.embed([chunk.text for chunk in chunks])
    for chunk, vector in zip(chunks, vectors, strict=True):
        chunk.vector = vector
    with open_store(store_location, create=True) as store:
        store.replace_documents(chunks, [])
        store.replace_documents(chunks, [])
        assert store.count() == len(chunks) > 1


def test_sync_repairs_chunks_stored_twice(tmp_path, tiny_embedder):
    docs = write_docs(tmp_path / "docs", 3)
    location = tmp_path / "kb"
    with KnowledgeBase(location, create=True, embedder=tiny_embedder) as kb:
        kb.add(docs)
        right = kb.store.count()
        table = kb.store._open_table()
        duplicate = table.search().where(f"doc_id = '{docs[1]}'").limit(100).to_arrow()
        table.add(duplicate)  # what two unlocked writers of an older infuse left behind
        assert kb.store.count() == right + duplicate.num_rows
        report = kb.sync()
        assert report.repaired == [str(docs[1])]
        assert kb.store.count() == right
        assert kb.sync().repaired == []
    one_copy_of_each_chunk(str(location))


# sync while the source folder is missing -------------------------------------------------
def test_sync_refuses_to_empty_the_kb_when_a_drive_is_unmounted(tmp_path, tiny_embedder, capsys):
    drive = tmp_path / "mnt" / "usb"
    docs = write_docs(drive / "manuals", 6)
    local = write_docs(tmp_path / "local", 1)
    location = tmp_path / "kb"
    with KnowledgeBase(location, create=True, embedder=tiny_embedder) as kb:
        kb.add([drive / "manuals", *local])
    unmounted = tmp_path / "elsewhere"
    shutil.move(drive / "manuals", unmounted)  # the mount point stays, its contents vanish

    with KnowledgeBase(location) as kb:
        with pytest.raises(SyncRefusedError) as refused:
            kb.sync()
        assert f"{drive / 'manuals'} (6, folder missing)" in str(refused.value)
        assert refused.value.roots == {str(drive / "manuals"): 6}
        assert "6 of 7 documents" in str(refused.value) and "--prune" in str(refused.value)
        assert sorted(refused.value.gone) == sorted(str(path) for path in docs)
        assert len(kb.documents()) == 7  # nothing removed

    assert main(["kb", "sync", "--kb", str(location)]) == 1
    err = capsys.readouterr().err
    assert "--prune" in err and str(drive / "manuals") in err and "Traceback" not in err
    assert main(["kb", "list", "--kb", str(location), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["documents"]) == 7

    shutil.move(unmounted, drive / "manuals")  # mounted again: nothing to do
    assert main(["kb", "sync", "--kb", str(location), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == []

    shutil.rmtree(drive / "manuals")  # really deleted: --prune confirms
    assert main(["kb", "sync", "--kb", str(location), "--prune", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["removed"]) == sorted(map(str, docs))
    with KnowledgeBase(location) as kb:
        assert [record.source for record in kb.documents()] == [str(local[0])]


def test_sync_removes_a_small_share_without_asking(tmp_path, tiny_embedder):
    docs = write_docs(tmp_path / "docs", 8)
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder) as kb:
        kb.add([tmp_path / "docs"])
        docs[0].unlink()
        docs[1].unlink()
        assert sorted(kb.sync().removed) == sorted([str(docs[0]), str(docs[1])])


# damaged store ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage", ["truncate-data", "delete-data", "truncate-manifest", "delete-manifest"]
)
def test_damaged_lancedb_files_are_one_line_errors(tmp_path, tiny_embedder_dir, damage, capsys):
    docs = write_docs(tmp_path / "docs", 2)
    location = tmp_path / "kb"
    with KnowledgeBase(location, create=True, embedder=str(tiny_embedder_dir)) as kb:
        kb.add(docs)
    table = location / "chunks.lance"
    data = sorted((table / "data").glob("*.lance"), key=lambda path: path.stat().st_size)[-1]
    manifest = sorted((table / "_versions").glob("*.manifest"))[0]
    if damage == "truncate-data":
        with open(data, "r+b") as handle:
            handle.truncate(100)
    elif damage == "delete-data":
        for path in (table / "data").glob("*.lance"):
            path.unlink()
    elif damage == "truncate-manifest":
        with open(manifest, "r+b") as handle:
            handle.truncate(40)
    else:
        for path in (table / "_versions").glob("*.manifest"):
            path.unlink()
    with pytest.raises(StoreError, match=f"Knowledge base {location} is damaged"):
        with KnowledgeBase(location) as kb:
            kb.search("refund policy", k=3)
    for command in (["kb", "search", "refund policy"], ["kb", "list"], ["kb", "sync"]):
        assert main([*command, "--kb", str(location)]) == 1, command
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        # (in-process, the embedder's loading bars may come first: tqdm was imported before
        # main() could switch them off)
        assert (
            err.strip().splitlines()[-1].startswith(f"Error: Knowledge base {location} is damaged")
        )


# bad values up front ---------------------------------------------------------------------
def test_out_of_range_chunking_is_refused_before_anything_is_created(tmp_path, capsys):
    location = tmp_path / "kb"
    for chunk_tokens, overlap in ((0, None), (-5, None), (8, None), (100, 50), (100, -1)):
        with pytest.raises(ConfigError):
            KnowledgeBase(location, create=True, chunk_tokens=chunk_tokens, overlap_tokens=overlap)
    (tmp_path / "a.md").write_text("refund policy")
    for flags in (["--chunk-tokens", "0"], ["--overlap-tokens", "-3"], ["--chunk-tokens", "x"]):
        assert main(["kb", "add", str(tmp_path / "a.md"), "--kb", str(location), *flags]) == 2
        assert "Invalid value" in capsys.readouterr().err
    assert (
        main(
            [
                "kb",
                "add",
                str(tmp_path / "a.md"),
                "--kb",
                str(location),
                "--chunk-tokens",
                "100",
                "--overlap-tokens",
                "60",
            ]
        )
        == 1
    )
    assert "Overlap 60 with chunk size 100" in capsys.readouterr().err
    assert main(["kb", "search", "x", "-k", "0", "--kb", str(location)]) == 2
    assert not location.exists()


def test_small_chunk_size_scales_the_default_overlap(tmp_path, tiny_embedder):
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder, chunk_tokens=40) as kb:
        assert kb.overlap_tokens == 8


# the same folder twice -------------------------------------------------------------------
def test_same_folder_through_a_symlink_is_stored_once(tmp_path, tiny_embedder):
    docs = write_docs(tmp_path / "real", 3)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file-link.md").symlink_to(docs[0])
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder) as kb:
        first = kb.add([tmp_path / "real"])
        second = kb.add([tmp_path / "link", tmp_path / "file-link.md"])
        assert len(first.added) == 3
        assert second.added == [] and sorted(second.unchanged) == sorted(map(str, docs))
        assert sorted(record.source for record in kb.documents()) == sorted(map(str, docs))
        removed, _ = kb.remove([tmp_path / "link" / docs[1].name])
        assert removed == [str(docs[1])]


def test_a_second_writer_waits_for_the_first(store_location, tiny_embedder, tmp_path):
    import threading

    docs = write_docs(tmp_path / "docs", 2)
    first = KnowledgeBase(store_location, create=True, embedder=tiny_embedder)
    second = KnowledgeBase(store_location, embedder=tiny_embedder)
    events: list[str] = []

    def on_progress(done, total, **info):
        events.append(info["stage"])

    try:
        with first.store.writing():
            worker = threading.Thread(target=lambda: second.add(docs, on_progress=on_progress))
            worker.start()
            worker.join(timeout=3)
            assert worker.is_alive() and events == ["waiting"]  # blocked on the lock
            assert first.store.count() == 0
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert events == ["waiting", "indexing", "indexing"]
        assert len(first.documents()) == 2
    finally:
        first.close()
        second.close()


def test_knowledge_bases_from_before_full_texts_still_open_and_upgrade(
    store_location, tiny_embedder
):
    page = "# Returns\n\nThe refund window is 45 days.\n\n## Gifts\n\nGift cards are final."
    with KnowledgeBase(store_location, create=True, embedder=tiny_embedder) as kb:
        kb.add_documents([Document(text=page, source="old-page", title="Returns")])
        if hasattr(kb.store, "_open_table"):
            kb.store._open_table().drop_columns(["document_text"])
        else:
            kb.store._execute("ALTER TABLE infuse_chunks DROP COLUMN document_text")
    with KnowledgeBase(store_location, create=True, embedder=tiny_embedder) as kb:
        rebuilt = kb.document("old-page").text  # from the chunks: every sentence is there
        assert "45 days" in rebuilt and "Gift cards are final." in rebuilt
        kb.add_documents([Document(text="Shipping takes three days.", source="new-note")])
        assert kb.document("new-note").text == "Shipping takes three days."
        assert "Gift cards are final." in kb.document("old-page").text
        assert kb.search("refund window", k=1, mode="bm25")[0].chunk.doc_id == "old-page"


def test_kb_add_of_nothing_is_an_error_and_creates_nothing(tmp_path, capsys):
    location = tmp_path / "kb"
    assert (
        main(["kb", "add", str(tmp_path / "typo"), str(tmp_path / "*.md"), "--kb", str(location)])
        == 1
    )
    assert "Nothing to add" in capsys.readouterr().err
    assert not location.exists()


def test_the_knowledge_base_never_indexes_its_own_folder(tmp_path, tiny_embedder):
    docs = write_docs(tmp_path / "project", 2)
    location = tmp_path / "project" / "kb"
    with KnowledgeBase(location, create=True, embedder=tiny_embedder) as kb:
        kb.add([tmp_path / "project"])
        again = kb.add([tmp_path / "project"])
        assert sorted(again.unchanged) == sorted(map(str, docs)) and again.added == []
        assert [item["path"] for item in again.skipped] == [str(location)]
        assert sorted(record.source for record in kb.documents()) == sorted(map(str, docs))


def test_garbage_settings_file_is_a_one_line_error(tmp_path, tiny_embedder, capsys):
    docs = write_docs(tmp_path / "docs", 1)
    location = tmp_path / "kb"
    with KnowledgeBase(location, create=True, embedder=tiny_embedder) as kb:
        kb.add(docs)
    (location / "kb.json").write_text('{"embedder": ')
    capsys.readouterr()
    assert main(["kb", "list", "--kb", str(location)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {location / 'kb.json'} is unreadable") and "--embedder" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
