"""The knowledge base's Python API for documents that are not files: add_documents, source
kinds and refreshers in sync, a document's full text and chunks back, progress callbacks.
Every test runs on LanceDB and on a real PostgreSQL + pgvector."""

from __future__ import annotations

import pytest

from infuse.errors import DataError
from infuse.knowledge import Document, KnowledgeBase
from infuse.knowledge.sources import RefreshResult, source_kind

PAGE = (
    "# Returns\n\nThe refund window is 45 days from delivery.\n\n"
    "## Exceptions\n\nGift cards cannot be refunded. Opened software is exchanged only.\n"
)


@pytest.fixture
def kb(store_location, tiny_embedder):
    knowledge = KnowledgeBase(
        store_location, create=True, embedder=tiny_embedder, chunk_tokens=24, overlap_tokens=4
    )
    yield knowledge
    knowledge.close()


def web_page(text: str = PAGE, url: str = "https://shop.example/returns") -> Document:
    return Document(text=text, source=url, title="Returns")


def test_import_from_package_and_source_kinds():
    from infuse.knowledge.kb import KnowledgeBase as direct

    assert KnowledgeBase is direct
    assert source_kind("https://shop.example/a") == "url"
    assert source_kind("http://127.0.0.1:8000/") == "url"
    assert source_kind("/home/me/notes.md") == "file"
    assert source_kind("note-17") == "text"
    assert source_kind("notes/relative.md") == "text"


def test_add_documents_round_trip_text_and_chunks(kb):
    note = Document(text="Support answers email within one day.", source="note-17", title="Support")
    report = kb.add_documents([web_page(), note])
    assert sorted(report.added) == ["https://shop.example/returns", "note-17"]
    assert report.chunks_written > 2

    shown = kb.document("https://shop.example/returns")
    assert shown.text == PAGE.strip() or shown.text == PAGE  # exactly what was added
    assert shown.source == "https://shop.example/returns" and shown.title == "Returns"
    chunks = kb.chunks("https://shop.example/returns")
    assert [chunk.position for chunk in chunks] == list(range(len(chunks))) and len(chunks) > 1
    assert all(chunk.chunk_count == len(chunks) for chunk in chunks)
    assert kb.search("Gift cards refunded", k=1, mode="bm25")[0].chunk.source == shown.source

    again = kb.add_documents([web_page(), note])
    assert again.added == [] and again.updated == [] and again.chunks_written == 0
    changed = kb.add_documents([web_page(PAGE.replace("45 days", "30 days"))])
    assert changed.updated == ["https://shop.example/returns"]
    assert "30 days" in kb.document("https://shop.example/returns").text
    assert kb.store.count() == sum(record.chunk_count for record in kb.documents())

    with pytest.raises(DataError, match="No document 'nope'"):
        kb.document("nope")


def test_add_documents_reports_empty_and_repeated(kb):
    report = kb.add_documents(
        [
            Document(text="   ", source="blank"),
            Document(text="Shipping takes three days.", source="a"),
            Document(text="Shipping takes four days.", source="a"),
        ]
    )
    assert report.added == ["a"]
    reasons = {item["path"]: item["reason"] for item in report.skipped}
    assert "no text" in reasons["blank"] and "given twice" in reasons["a"]
    assert "three days" in kb.document("a").text


class StubSiteRefresher:
    """Stands in for the crawler's URL refresher (the contract it will implement): one page
    changed, one answers 404, the rest unchanged (not returned)."""

    kind = "url"

    def __init__(self):
        self.asked: list[str] = []

    def refresh(self, records):
        self.asked = sorted(record.source for record in records)
        return RefreshResult(
            documents=[web_page(PAGE.replace("45 days", "60 days"))],
            gone=["https://shop.example/old"],
        )


def test_sync_removes_only_what_its_kind_says_is_gone(kb, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe office is in Springfield.\n")
    kb.add([notes])
    kb.add_documents(
        [
            web_page(),
            Document(text="This page moved away.", source="https://shop.example/old"),
            Document(text="Same page as before.", source="https://shop.example/same"),
            Document(text="Hand-written fact: anvils are heavy.", source="fact-1"),
        ]
    )
    # Without a URL refresher, sync touches neither URLs nor plain ids.
    report = kb.sync()
    assert report.removed == [] and report.updated == []
    assert sorted(report.unchecked) == [
        "https://shop.example/old",
        "https://shop.example/returns",
        "https://shop.example/same",
    ]
    assert str(notes) in report.unchanged

    refresher = StubSiteRefresher()
    notes.unlink()
    report = kb.sync(refreshers=[refresher], prune=True)  # 2 of 5 gone: past the safe share
    assert refresher.asked == [
        "https://shop.example/old",
        "https://shop.example/returns",
        "https://shop.example/same",
    ]
    assert sorted(report.removed) == sorted([str(notes), "https://shop.example/old"])
    assert report.updated == ["https://shop.example/returns"]
    assert "https://shop.example/same" in report.unchanged
    assert {record.doc_id for record in kb.documents()} == {
        "https://shop.example/returns",
        "https://shop.example/same",
        "fact-1",
    }
    assert "60 days" in kb.document("https://shop.example/returns").text


def test_metadata_given_at_add_survives_sync(kb, tmp_path):
    page = tmp_path / "policy.md"
    page.write_text("# Policy\n\nWarranty covers defects for two years.\n")
    kb.add([page], metadata={"team": "support"})
    report = kb.sync()
    assert report.unchanged == [str(page)] and report.updated == []
    assert kb.document(str(page)).metadata == {"team": "support"}
    assert kb.search("warranty", k=1, filters={"team": "support"})


def test_the_last_progress_call_means_the_chunks_are_stored(kb, tmp_path):
    """Embedding is most of a small folder's time and happens in the final commit: "3/3" must
    not be said (a CLI prints "done in 1 s") while it is still ahead."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for index in range(3):
        (folder / f"d{index}.md").write_text(f"# Doc {index}\n\nShipping fact number {index}.\n")
    stored: list[tuple[int, int, int]] = []
    kb.add([folder], on_progress=lambda done, total, **info: stored.append(
        (done, total, kb.store.count())))
    assert [(done, total) for done, total, _ in stored] == [(1, 3), (2, 3), (3, 3)]
    assert stored[-1][2] > 0 and stored[0][2] == 0  # the last call comes after the commit


def test_progress_goes_to_the_callback_and_nothing_prints(kb, tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    for index in range(4):
        (folder / f"d{index}.md").write_text(f"# Doc {index}\n\nShipping fact number {index}.\n")
    calls: list[tuple[int, int, dict]] = []
    kb.add([folder], on_progress=lambda done, total, **info: calls.append((done, total, info)))
    assert [(done, total) for done, total, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert {info["item"] for _, _, info in calls} == {f"d{index}.md" for index in range(4)}
    calls.clear()
    kb.sync(on_progress=lambda done, total, **info: calls.append((done, total, info)))
    assert calls[-1][:2] == (4, 4)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
