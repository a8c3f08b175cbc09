"""`infuse serve` under load, on 127.0.0.1: concurrent chat clients, and what MCP adds to a search.

1. Chat: for each level (1, 4, 16 clients), N threads send streamed chat completions for
   `--seconds`, each waiting for its answer before the next (a client that gets 429 waits the
   `Retry-After` it was told, at most 1 s, and tries again). Per level: p50/p95 time to first
   token and total latency of the answered requests, answered requests per second, 429s, and
   other errors (which must be 0).
2. MCP overhead (measured first, on the idle server): `search` over Streamable HTTP (the SDK's
   client, one session) beside the same search called in Python on an open knowledge base
   (`Library.search`), alternating, `--searches` times each; p50/p95 and the difference at p50
   (target: under 10 ms). A client that gives up waiting (`--client-timeout`) is counted apart
   from server errors.

By default it builds a knowledge base from the sample pack (infuse/samples/nimbus/docs, minilm)
in a temporary folder and serves the default model (smollm2) with rag, cag and base.

    PYTHONPATH=$PWD python bench/serve.py                      # the default model, 1/4/16 clients
    PYTHONPATH=$PWD python bench/serve.py --levels 1,4 --seconds 20 --model infuse-cag
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How long is the refund window?",
    "How do I reset my password?",
    "What does the premium plan cost?",
    "How long does shipping take?",
    "Who do I contact for support?",
]


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_kb(folder: Path) -> Path:
    from infuse.serve.library import open_knowledge_base

    docs = REPO / "infuse" / "samples" / "nimbus" / "docs"
    kb = open_knowledge_base(folder, create=True, embedder="minilm")
    kb.add([str(docs)])
    kb.close()
    return folder


def start_server(args: argparse.Namespace, kb: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "infuse", "serve", "--kb", str(kb), "--model", args.base_model,
               "--port", str(port), "--queue-size", str(args.queue_size),
               "--max-new-tokens", str(args.max_tokens), "--methods", "rag,cag,base"]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + args.start_timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"server not ready after {args.start_timeout}s:\n{log.read_text()}")


def one_request(client: httpx.Client, url: str, model: str, question: str, max_tokens: int) -> dict:
    """One streamed chat completion: status, time to first content, total, Retry-After."""
    started = time.perf_counter()
    first = None
    body = {"model": model, "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens, "stream": True}
    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            return {"status": response.status_code, "retry_after": response.headers.get("Retry-After")}
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                return {"status": 500, "error": chunk["error"]}
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter() - started
    total = time.perf_counter() - started
    return {"status": 200, "ttft": first if first is not None else total, "total": total}


def run_level(url: str, clients: int, args: argparse.Namespace) -> dict:
    records: list[dict] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def client_loop(index: int) -> None:
        with httpx.Client(timeout=args.client_timeout) as client:
            turn = index
            while time.time() < stop_at:
                question = QUESTIONS[turn % len(QUESTIONS)]
                turn += 1
                try:
                    record = one_request(client, url, args.model, question, args.max_tokens)
                except httpx.TimeoutException as error:
                    record = {"status": -2, "error": str(error)}  # the client gave up waiting
                except httpx.HTTPError as error:
                    record = {"status": -1, "error": str(error)}
                with lock:
                    records.append(record)
                if record["status"] == 429:
                    time.sleep(min(1.0, float(record.get("retry_after") or 1)))

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    answered = [record for record in records if record["status"] == 200]
    return {
        "clients": clients,
        "answered": len(answered),
        "ttft_p50": percentile([r["ttft"] for r in answered], 0.5),
        "ttft_p95": percentile([r["ttft"] for r in answered], 0.95),
        "total_p50": percentile([r["total"] for r in answered], 0.5),
        "total_p95": percentile([r["total"] for r in answered], 0.95),
        "rps": len(answered) / elapsed,
        "refused_429": sum(1 for record in records if record["status"] == 429),
        "timeouts": sum(1 for record in records if record["status"] == -2),
        "errors": sum(1 for record in records if record["status"] not in (200, 429, -2)),
        "elapsed": elapsed,
    }


def search_times(url: str, kb: Path, queries: list[str], count: int) -> tuple[list[float], list[float]]:
    """(Python, MCP) search times, measured alternately so both see the same machine load."""
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from infuse.serve.library import Library, open_knowledge_base

    library = Library(open_knowledge_base(kb))
    python: list[float] = []
    mcp: list[float] = []

    async def measure() -> None:
        http = httpx2.AsyncClient(timeout=httpx2.Timeout(60))
        async with Client(streamable_http_client(url + "/mcp", http_client=http)) as client:
            library.search(queries[0], 5)  # warm-up: loads the embedder here
            await client.call_tool("search", {"query": queries[0], "k": 5})
            for index in range(count):
                query = queries[index % len(queries)]
                started = time.perf_counter()
                library.search(query, 5)
                python.append(time.perf_counter() - started)
                started = time.perf_counter()
                result = await client.call_tool("search", {"query": query, "k": 5})
                mcp.append(time.perf_counter() - started)
                assert not result.is_error, result.content

    anyio.run(measure)
    return python, mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, help="Knowledge base to serve (default: the sample pack, built now).")
    parser.add_argument("--base-model", default="smollm2", help="Model infuse serve loads.")
    parser.add_argument("--model", default="infuse-rag", help="Model id the clients ask.")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=30.0, help="How long each level runs.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--queue-size", type=int, default=8)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--client-timeout", type=float, default=600.0,
                        help="A client gives up on a request after this long (counted apart).")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="infuse-bench-serve-") as temp:
        temp = Path(temp)
        kb = args.kb or build_kb(temp / "kb")
        process, url = start_server(args, kb, temp / "server.log")
        try:
            python, mcp = search_times(url, kb, QUESTIONS, args.searches)  # idle server, before load
            levels = [run_level(url, int(level), args) for level in args.levels.split(",")]
        finally:
            process.terminate()
            process.wait(30)

    from importlib.metadata import version

    print(f"infuse serve on 127.0.0.1 - {platform.platform()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, torch {version('torch')}, mcp {version('mcp')}, "
          f"uvicorn {version('uvicorn')}")
    print(f"model {args.base_model}, asked as {args.model}, max_tokens {args.max_tokens}, "
          f"queue {args.queue_size} per model, {args.seconds:.0f} s per level\n")
    print("| clients | answered | req/s | TTFT p50 ms | TTFT p95 ms | total p50 ms | total p95 ms | 429s | client timeouts | errors |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for level in levels:
        print(f"| {level['clients']} | {level['answered']} | {level['rps']:.2f} | {ms(level['ttft_p50'])} | "
              f"{ms(level['ttft_p95'])} | {ms(level['total_p50'])} | {ms(level['total_p95'])} | "
              f"{level['refused_429']} | {level['timeouts']} | {level['errors']} |")
    print(f"\nsearch, {args.searches} queries, k=5, Python and MCP calls alternating, idle server:\n")
    print("| path | p50 ms | p95 ms |")
    print("| --- | ---: | ---: |")
    print(f"| Python `Library.search` | {percentile(python, 0.5) * 1000:.1f} | {percentile(python, 0.95) * 1000:.1f} |")
    print(f"| MCP `search` over HTTP | {percentile(mcp, 0.5) * 1000:.1f} | {percentile(mcp, 0.95) * 1000:.1f} |")
    overhead = (percentile(mcp, 0.5) - percentile(python, 0.5)) * 1000
    print(f"| overhead at p50 | {overhead:.1f} | |")


if __name__ == "__main__":
    main()
