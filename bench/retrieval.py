"""Retrieval benchmark: quality (nDCG@10 etc. per mode) and speed (100k chunks) in one run.

Quality. No public IR collection (BEIR SciFact, ...) ships its data in a PyPI package: `beir` and
`ir_datasets` download at run time, which nothing here may do. So the collection is built from
real text that is on every machine: the docstrings of the Python standard library. Each object
with a long docstring gives one document (the docstring body, its first line removed) and one
query (that first line, the human-written summary); the one relevant document of a query is the
body it was cut from ("known-item" retrieval). Labels are exact by construction, the text is
human-written, and neither side was written for this benchmark. It runs through the whole
pipeline: JSONL rows -> chunking -> all-MiniLM-L6-v2 -> LanceDB -> bm25 / dense / hybrid.

Speed. Embedding 100k chunks with MiniLM takes ~10 min on 2 cores, so the speed part stores
100k synthetic unit vectors (dim 384, clustered like real embeddings: 1,000 centres plus noise)
with short random-word texts, and times `dense_search` (LanceDB IVF-PQ index, refined by exact
distances) beside exact numpy search; recall@10 is against the exact top 10. "embedding
included" adds the real MiniLM encoding of a question to each query.

    .venv/bin/python bench/retrieval.py [--chunks 100000] [--queries 200] [--docs 1500]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STDLIB_MODULES = (
    "abc argparse ast asyncio base64 bisect bz2 calendar codecs collections colorsys configparser contextlib "
    "copy csv dataclasses datetime decimal difflib dis doctest email.message email.utils enum filecmp fnmatch "
    "fractions ftplib functools gettext glob gzip hashlib heapq hmac html.parser http.client http.cookiejar "
    "http.server imaplib inspect io ipaddress itertools json locale logging logging.handlers lzma mailbox "
    "mimetypes multiprocessing netrc numbers operator optparse os os.path pathlib pdb pickle pkgutil platform "
    "plistlib poplib pprint queue random re reprlib sched secrets selectors shelve shlex shutil signal smtplib "
    "socket socketserver sqlite3 ssl statistics string struct subprocess sysconfig tarfile tempfile textwrap "
    "threading timeit tokenize trace traceback types typing unittest unittest.mock urllib.parse "
    "urllib.request uuid warnings wave weakref xml.dom.minidom xml.etree.ElementTree zipfile zoneinfo"
).split()


def stdlib_collection(
    limit: int, seed: int = 0
) -> tuple[list[dict], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus rows, queries, qrels) from standard-library docstrings (see the module docstring)."""
    found: dict[str, tuple[str, str]] = {}
    for module_name in STDLIB_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        objects = [
            (f"{module_name}.{name}", value)
            for name, value in vars(module).items()
            if not name.startswith("_")
        ]
        for qualified, value in list(objects):
            if inspect.isclass(value) and getattr(value, "__module__", "") == module.__name__:
                objects += [
                    (f"{qualified}.{name}", member)
                    for name, member in vars(value).items()
                    if not name.startswith("_") and callable(member)
                ]
        for qualified, value in objects:
            if (
                getattr(value, "__module__", module.__name__) != module.__name__
                and not qualified.count(".") > 1
            ):
                continue
            doc = inspect.getdoc(value) or ""
            summary, _, body = doc.partition("\n")
            summary, body = summary.strip(), " ".join(body.split())
            if len(summary.split()) >= 5 and len(body.split()) >= 25 and summary not in body:
                found.setdefault(body, (qualified, summary))
    items = sorted((qualified, summary, body) for body, (qualified, summary) in found.items())
    random.Random(seed).shuffle(items)
    items = items[:limit]
    corpus = [{"_id": f"d{i}", "text": body} for i, (_, _, body) in enumerate(items)]
    queries = {f"q{i}": summary for i, (_, summary, _) in enumerate(items)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(len(items))}
    return corpus, queries, qrels


def quality(docs: int, work: Path) -> tuple[dict, int, int, float]:
    """Build the knowledge base from the collection and score every mode."""
    from infuse.knowledge.evaluation import evaluate_retrieval
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.readers import RowOptions

    corpus, queries, qrels = stdlib_collection(docs)
    corpus_path = work / "stdlib_docstrings.jsonl"
    corpus_path.write_text("\n".join(json.dumps(row) for row in corpus), encoding="utf-8")
    started = time.perf_counter()
    with KnowledgeBase(work / "quality-kb", create=True) as kb:
        report = kb.add(
            [corpus_path], row_options=RowOptions(text_columns=["text"], id_column="_id")
        )
        ingest_s = time.perf_counter() - started
        result = evaluate_retrieval(
            kb, queries, qrels, modes=("bm25", "dense", "hybrid", "hybrid+rerank")
        )
    return result.metrics, len(corpus), report.chunks_written, ingest_s


def clustered_vectors(
    count: int, dimension: int, rng: np.random.Generator, centres: np.ndarray
) -> np.ndarray:
    """Unit vectors near random cluster centres (real embeddings cluster; uniform noise does not)."""
    picks = centres[rng.integers(0, len(centres), count)]
    vectors = (
        picks + rng.normal(0, 1.0 / np.sqrt(dimension), (count, dimension)).astype(np.float32) * 0.8
    )
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def speed(chunks: int, query_count: int, work: Path) -> dict:
    """Time dense search at `chunks` in LanceDB (indexed) beside exact numpy search."""
    from infuse.knowledge.documents import Chunk
    from infuse.knowledge.embeddings import Embedder
    from infuse.knowledge.lance_store import LanceStore

    dimension = 384
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dimension)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = clustered_vectors(chunks, dimension, rng, centres)
    queries = clustered_vectors(query_count, dimension, rng, centres)
    words = np.array([f"w{index}" for index in range(5000)])
    store = LanceStore(work / "speed-kb")
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, chunks, batch):
        rows = [
            Chunk(
                chunk_id=f"c{i}",
                doc_id=f"doc{i // 4}",
                source=f"/bench/doc{i // 4}.md",
                text=" ".join(rng.choice(words, 12)),
                position=i % 4,
                chunk_count=4,
                doc_hash="h",
                vector=data[i],
            )
            for i in range(start, min(start + batch, chunks))
        ]
        store.replace_documents(rows, [])
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    store.optimize()  # builds the IVF-PQ index (>= 50k chunks)
    index_s = time.perf_counter() - started

    exact_top = []
    numpy_times = []
    for query in queries:
        t0 = time.perf_counter()
        scores = data @ query
        top = np.argpartition(-scores, 10)[:10]
        top = top[np.argsort(-scores[top])]
        numpy_times.append(time.perf_counter() - t0)
        exact_top.append({f"c{i}" for i in top})

    for query in queries[:10]:  # warm the index cache
        store.dense_search(query, 10)
    lance_times, recalls = [], []
    for query, truth in zip(queries, exact_top, strict=True):
        t0 = time.perf_counter()
        hits = store.dense_search(query, 10)
        lance_times.append(time.perf_counter() - t0)
        recalls.append(len(truth & {hit.chunk.chunk_id for hit in hits}) / 10)

    embedder = Embedder("minilm", device="cpu")
    questions = [
        f"How does feature {i} handle refunds for order {i * 7}?" for i in range(query_count)
    ]
    embedder.embed_query("warm up")
    with_embed_lance, with_embed_numpy = [], []
    for question, query in zip(questions, queries, strict=True):
        t0 = time.perf_counter()
        embedder.embed_query(question)
        t1 = time.perf_counter()
        store.dense_search(query, 10)
        with_embed_lance.append(time.perf_counter() - t0)
        with_embed_numpy.append(t1 - t0 + numpy_times[len(with_embed_numpy)])
    return {
        "chunks": chunks,
        "queries": query_count,
        "load_s": load_s,
        "index_s": index_s,
        "lance": percentiles(lance_times),
        "lance_embed": percentiles(with_embed_lance),
        "numpy": percentiles(numpy_times),
        "numpy_embed": percentiles(with_embed_numpy),
        "recall": float(np.mean(recalls)),
        "nprobes": store.nprobes,
        "refine": store.refine_factor,
    }


def environment() -> str:
    """Versions and hardware, one line."""
    import lancedb
    import sentence_transformers
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Python {platform.python_version()}, lancedb {lancedb.__version__}, numpy {np.__version__}, "
        f"torch {torch.__version__}, sentence-transformers {sentence_transformers.__version__}; "
        f"{cpu}, {os.cpu_count()} cores (shared), load average {os.getloadavg()[0]:.1f} at start"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--docs", type=int, default=1500, help="documents in the quality collection"
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "retrieval.md"
    )
    args = parser.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        metrics, docs, chunk_count, ingest_s = quality(args.docs, work)
        timing = speed(args.chunks, args.queries, work)
    lines = [
        "# Retrieval benchmark",
        "",
        f"`.venv/bin/python bench/retrieval.py` — {env}",
        "",
        f"## Quality: Python stdlib docstrings, known-item ({docs} documents, {chunk_count} chunks, "
        f"{docs} queries; ingest with all-MiniLM-L6-v2 {ingest_s:.0f} s)",
        "",
        "| mode | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, values in metrics.items():
        if values is None:
            lines.append(f"| {mode} | n/a: no local cross-encoder model is packaged | | | | | |")
            continue
        lines.append(
            f"| {mode} | {values['recall@1']:.3f} | {values['recall@5']:.3f} | {values['recall@10']:.3f} | "
            f"{values['mrr']:.3f} | {values['ndcg@10']:.3f} | {values['ms/query']:.1f} |"
        )
    lance, lance_embed, numpy_p, numpy_embed = (
        timing["lance"],
        timing["lance_embed"],
        timing["numpy"],
        timing["numpy_embed"],
    )
    lines += [
        "",
        f"## Speed: {timing['chunks']:,} chunks, dim 384, {timing['queries']} queries, top 10 "
        f"(synthetic clustered unit vectors; load {timing['load_s']:.0f} s, index build {timing['index_s']:.0f} s)",
        "",
        "| search | p50 ms | p95 ms | p50 ms with MiniLM query embedding | p95 ms with embedding | recall@10 vs exact |",
        "|---|---|---|---|---|---|",
        f"| infuse LanceStore (LanceDB IVF-PQ, nprobes {timing['nprobes']}, refine x{timing['refine']}) | {lance[0]:.1f} | "
        f"{lance[1]:.1f} | {lance_embed[0]:.1f} | {lance_embed[1]:.1f} | {timing['recall']:.3f} |",
        f"| numpy exact (matrix product + argpartition) | {numpy_p[0]:.1f} | {numpy_p[1]:.1f} | {numpy_embed[0]:.1f} | "
        f"{numpy_embed[1]:.1f} | 1.000 |",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temp = args.output.with_suffix(".tmp")
    temp.write_text(table, encoding="utf-8")
    os.replace(temp, args.output)


if __name__ == "__main__":
    main()
