"""Bad situations: kill -9 in the middle of an ingest, a database server that is down, bad locations."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from infuse.errors import StoreError
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.stores import open_store

INGEST = """
import sys
from infuse.knowledge.kb import KnowledgeBase
KnowledgeBase(sys.argv[1], create=True, embedder=sys.argv[2], chunk_tokens=32, overlap_tokens=0, commit_chunks=4).add([sys.argv[3]])
"""


def _consistent(location: str) -> tuple[int, int]:
    """Every stored document has all its chunks; returns (documents, chunks)."""
    with open_store(location) as store:
        records = store.documents()
        chunks = store.count()
    assert sum(record.chunk_count for record in records) == chunks
    return len(records), chunks


@pytest.mark.slow
def test_kill_9_mid_add_leaves_whole_documents_and_rerun_completes(
    store_location, tiny_embedder_dir, tmp_path
):
    folder = tmp_path / "many"
    folder.mkdir()
    total = 60
    for index in range(total):
        paragraphs = [
            f"Document {index} part {part}: " + " ".join(["refund policy words"] * 6)
            for part in range(2)
        ]
        (folder / f"doc{index:03}.md").write_text(f"# Doc {index}\n\n" + "\n\n".join(paragraphs))
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST, store_location, str(tiny_embedder_dir), str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with open_store(
                store_location
            ) as store:  # a fresh handle sees the other process's commits
                if store.count() >= 8:
                    break
        except Exception:  # the table may be mid-creation
            pass
        time.sleep(0.02)
    assert process.poll() is None, (
        f"ingest ended before it could be killed: {process.stderr.read()[-2000:]}"
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    documents, chunks = _consistent(store_location)
    assert 0 < documents < total

    with KnowledgeBase(
        store_location, embedder=str(tiny_embedder_dir), chunk_tokens=32, overlap_tokens=0
    ) as kb:
        report = kb.add([folder])
    assert len(report.unchanged) == documents
    assert len(report.added) == total - documents
    documents_after, chunks_after = _consistent(store_location)
    assert documents_after == total and chunks_after > chunks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_down_database_server_gives_clear_error():
    port = _free_port()
    url = f"postgresql://infuse:s3cret@127.0.0.1:{port}/kb"
    started = time.monotonic()
    with pytest.raises(StoreError) as error:
        open_store(url)
    message = str(error.value)
    assert f"127.0.0.1:{port}/kb" in message and "Is it running" in message
    assert "s3cret" not in message
    assert time.monotonic() - started < 10


def test_kb_location_that_is_a_file(tmp_path):
    path = tmp_path / "kb"
    path.write_text("not a folder")
    with pytest.raises(StoreError, match="is a file"):
        open_store(path)


def test_missing_paths_are_reported(tmp_path, tiny_embedder):
    with KnowledgeBase(tmp_path / "kb", create=True, embedder=tiny_embedder) as kb:
        report = kb.add([tmp_path / "nothing.md", str(tmp_path / "*.pdf")])
    assert [item["path"] for item in report.skipped] == [
        str(tmp_path / "nothing.md"),
        str(tmp_path / "*.pdf"),
    ]
    assert report.added == []
