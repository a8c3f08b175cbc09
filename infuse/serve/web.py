"""The web page at `/` and the small JSON API it reads (`/api/...`, behind the same bearer token
as `/v1`).

    GET    /api/info                      status, persona, knowledge base, what the page can do
    GET    /api/documents                 documents with chunk counts and dates
    GET    /api/documents/{key}           one document's chunks
    POST   /api/documents/upload          add one file (raw body, name in `X-Filename`)
    POST   /api/documents/url             add a web page, or a small crawl from it:
                                          {"url": ..., "max_pages": 1} (see web_pages.py)
    POST   /api/documents/sync            `kb sync`: web pages asked again (ETag), files re-read
    DELETE /api/documents/{key}           remove one document
    GET    /api/search?q=&k=              chunks with scores
    GET    /api/runs                      training runs under --runs (CLI runs included)
    GET    /api/runs/{name}               one run: settings and loss curve
    GET    /api/datasets                  dataset files under --allow-root
    GET    /api/datasets/inspect?path=    the inspect report of one of them
    GET    /api/verdict                   the profile and the eval results beside it

The page itself (`static/`) is plain HTML/JS/CSS: no build step, nothing fetched from elsewhere.
Every path a client names is resolved and must lie under an allowed root; sizes are bounded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tempfile
import threading
from pathlib import Path
from typing import Any

STATIC = Path(__file__).with_name("static")
DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".tsv")
MAX_LISTED = 500
MAX_CHUNKS = 2000


def _error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"message": message}}, status_code=status)


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _document_dates(record: Any) -> dict[str, str | None]:
    """When a document was added (uploads and web pages record it) and when its source last
    changed (a file's modification time, a web page's Last-Modified header)."""
    options = getattr(record, "reader_options", None) or {}
    added = (record.metadata or {}).get("added") or options.get("added")
    changed = _http_date(options.get("last_modified"))
    source = record.source
    if source and Path(source).is_absolute():
        try:
            changed = _iso(Path(source.split("#")[0]).stat().st_mtime)
        except OSError:
            changed = None
    return {"added": added, "changed": changed}


def _http_date(value: str | None) -> str | None:
    """An HTTP date (Last-Modified) in the page's one date format; the raw text if unparsable."""
    import email.utils

    if not value:
        return None
    try:
        return _iso(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return value


def _under_roots(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(Path(root).expanduser().resolve()) for root in roots)


def web_routes(settings: Any, library: Any, assistant: Any) -> list[Any]:
    """The `/api` routes and the static page."""
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from infuse.serve.schemas import doc_key
    from infuse.serve.web_pages import MAX_PAGE_BYTES, MAX_PAGES, UrlAddError, add_url, sync_pages

    roots = [Path(root) for root in settings.allowed_roots]
    crawling = threading.Lock()  # one web crawl at a time: each is slow by design (politeness)

    def need_kb():
        if library is None:
            return _error(404, "No knowledge base is served: start `infuse serve --kb DIR`.")
        return None

    def need_writable_kb(refused: str):
        """need_kb, then a 403 saying what is `refused` when the server is read-only."""
        if (missing := need_kb()) is not None:
            return missing
        if settings.read_only:
            return _error(403, f"This server is read-only (--read-only): {refused}.")
        return None

    async def index(_request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(_request):
        state = assistant.state() if assistant is not None else {"status": "ready", "models": []}
        return JSONResponse({
            "status": state.get("status"),
            "error": state.get("error"),
            "persona": settings.persona,
            "kb": library.location if library is not None else None,
            "runs": str(settings.runs) if settings.runs else None,
            "profile": str(settings.profile) if settings.profile else None,
            "allowed_roots": [str(root) for root in roots],
            "read_only": settings.read_only,
            "can_upload": library is not None and not settings.read_only,
            "can_add_url": library is not None and not settings.read_only,
            "allow_private": settings.allow_private,
            "max_url_pages": MAX_PAGES,
        })

    async def documents(_request):
        if (missing := need_kb()) is not None:
            return missing
        records = await asyncio.to_thread(library.kb.documents)
        rows = [
            {"key": doc_key(record.doc_id), "doc_id": record.doc_id, "source": record.source,
             "title": record.title, "chunk_count": record.chunk_count, **_document_dates(record)}
            for record in records[:MAX_LISTED]
        ]
        return JSONResponse({"count": len(records), "documents": rows, "kb": library.location})

    async def document(request):
        if (missing := need_kb()) is not None:
            return missing
        record = await asyncio.to_thread(library.record, request.path_params["key"])
        if record is None:
            return _error(404, f"No document {request.path_params['key']!r} in this knowledge base.")
        chunks = sorted(await asyncio.to_thread(library.chunks, record.doc_id), key=lambda c: c.position)
        return JSONResponse({
            "key": doc_key(record.doc_id), "doc_id": record.doc_id, "source": record.source,
            "title": record.title, "chunk_count": record.chunk_count, **_document_dates(record),
            "chunks": [{"chunk_id": c.chunk_id, "position": c.position, "text": c.text,
                        "heading_path": list(getattr(c, "heading_path", []) or [])}
                       for c in chunks[:MAX_CHUNKS]],
        })

    async def remove(request):
        if (refusal := need_writable_kb("documents cannot be removed")) is not None:
            return refusal
        result = await asyncio.to_thread(library.remove, [request.path_params["key"]])
        if not result.removed:
            return _error(404, f"No document {request.path_params['key']!r} to remove.")
        return JSONResponse(result.model_dump())

    async def upload(request):
        if (refusal := need_writable_kb("nothing can be added")) is not None:
            return refusal
        name = Path(request.headers.get("x-filename", "")).name
        if not name:
            return _error(400, "Send the file's name in the X-Filename header.")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > settings.max_file_bytes:
                return _error(413, f"{name} is larger than the {settings.max_file_bytes // 2**20} MB limit (--max-file-mb).")
        if not body:
            return _error(400, f"{name} is empty.")
        try:
            report = await asyncio.to_thread(_add_upload, library, name, bytes(body))
        except Exception as error:  # noqa: BLE001 - reported to the page in words
            return _error(400, f"Could not add {name}: {error}")
        return JSONResponse(report)

    async def add_web_page(request):
        if (refusal := need_writable_kb("nothing can be added")) is not None:
            return refusal
        try:
            body = await request.json()
            url = str(body.get("url", ""))
            max_pages = int(body.get("max_pages", 1))
        except (ValueError, TypeError, AttributeError):
            return _error(400, 'Send JSON like {"url": "https://example.org/page", "max_pages": 1}.')
        try:
            result = await asyncio.to_thread(
                add_url, library, url, max_pages=max_pages, allow_private=settings.allow_private,
                max_bytes=min(settings.max_file_bytes, MAX_PAGE_BYTES), busy=crawling,
            )
        except UrlAddError as error:
            return _error(error.status, str(error))
        return JSONResponse(result.to_dict())

    async def sync(_request):
        if (refusal := need_writable_kb("nothing can be refreshed")) is not None:
            return refusal
        try:
            report = await asyncio.to_thread(sync_pages, library, allow_private=settings.allow_private, busy=crawling)
        except UrlAddError as error:
            return _error(error.status, str(error))
        return JSONResponse(report)

    async def search(request):
        if (missing := need_kb()) is not None:
            return missing
        query = request.query_params.get("q", "")
        try:
            k = int(request.query_params.get("k", "8"))
            result = await asyncio.to_thread(library.search, query[:2000], k)
        except ValueError as error:
            return _error(400, str(error))
        return JSONResponse(result.model_dump())

    async def runs(_request):
        if settings.runs is None:
            return JSONResponse({"runs": [], "message": "No runs folder: start `infuse serve --runs DIR`."})
        return JSONResponse({"runs": await asyncio.to_thread(_list_runs, Path(settings.runs))})

    async def run(request):
        if settings.runs is None:
            return _error(404, "No runs folder: start `infuse serve --runs DIR`.")
        name = request.path_params["name"]
        folder = (Path(settings.runs) / name)
        if "/" in name or name.startswith(".") or not _under_roots(folder, [Path(settings.runs)]):
            return _error(400, f"{name!r} is not a run name.")
        try:
            return JSONResponse(await asyncio.to_thread(_run_detail, folder))
        except Exception as error:  # noqa: BLE001
            return _error(404, f"Cannot read run {name}: {error}")

    async def datasets(_request):
        if not roots:
            return JSONResponse({"files": [], "message": "No allowed folders: start `infuse serve --allow-root DIR` to pick dataset files."})
        return JSONResponse({"files": await asyncio.to_thread(_list_datasets, roots)})

    async def inspect(request):
        raw = request.query_params.get("path", "")
        path = Path(raw).expanduser()
        if not raw or not roots or not _under_roots(path, roots):
            return _error(403, f"{raw or 'That path'} is not under an allowed folder (--allow-root).")
        if not path.is_file():
            return _error(404, f"{raw} is not a file.")
        model = settings.model if not settings.base_url else None
        try:
            report = await asyncio.to_thread(_inspect, path, model)
        except Exception as error:  # noqa: BLE001
            return _error(400, f"Cannot inspect {path.name}: {error}")
        return JSONResponse(report)

    async def verdict(_request):
        return JSONResponse(await asyncio.to_thread(_verdict, settings, assistant))

    async def not_found(request):
        return _error(404, f"No API route {request.url.path}.")

    return [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/documents", documents),
        Route("/api/documents/upload", upload, methods=["POST"]),
        Route("/api/documents/url", add_web_page, methods=["POST"]),
        Route("/api/documents/sync", sync, methods=["POST"]),
        Route("/api/documents/{key:path}", document, methods=["GET"]),
        Route("/api/documents/{key:path}", remove, methods=["DELETE"]),
        Route("/api/search", search),
        Route("/api/runs", runs),
        Route("/api/runs/{name}", run),
        Route("/api/datasets", datasets),
        Route("/api/datasets/inspect", inspect),
        Route("/api/verdict", verdict),
        Route("/api/{rest:path}", not_found),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        Route("/favicon.ico", lambda _r: Response(status_code=204)),
    ]


def _add_upload(library: Any, name: str, body: bytes) -> dict[str, Any]:
    """Read an uploaded file with the shared readers and add it under the source `upload/<name>`."""
    from infuse.knowledge.reading import read_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(body)
        documents = read_file(path)
        source = f"upload/{name}"
        now = _iso(dt.datetime.now(dt.UTC).timestamp())
        for document in documents:
            document.doc_id = document.doc_id.replace(str(path), source, 1)
            document.source = source
            document.metadata = {**document.metadata, "added": now}
            document.reader_options = {}
    return library.add_documents(documents).to_dict()


def _list_runs(folder: Path) -> list[dict[str, Any]]:
    from infuse.train.runs import RunRecord, is_run_folder

    found = []
    if not folder.is_dir():
        return found
    candidates = [folder] if is_run_folder(folder) else sorted(p for p in folder.iterdir() if p.is_dir())
    for path in candidates[:MAX_LISTED]:
        if not is_run_folder(path):
            continue
        try:
            record = RunRecord.read(path, metrics=False)
        except Exception:  # noqa: BLE001 - a broken run is listed with its reason
            found.append({"name": path.name, "status": "unreadable"})
            continue
        steps, loss = record.steps, record.final_loss
        if record.status == "running":  # run.json is written at the end: the live step is in metrics
            logged = [point for point in RunRecord.read(path).curve() if point.get("loss") is not None]
            if logged:
                steps, loss = max(steps, logged[-1]["step"]), logged[-1]["loss"]
        found.append({"name": path.name, "status": record.status, "model": record.config.model,
                      "steps": steps, "total_steps": record.total_steps,
                      "final_loss": loss, "eval_loss": record.eval_loss,
                      "started": record.started, "finished": record.finished})
    return found


def _run_detail(folder: Path) -> dict[str, Any]:
    from infuse.train.runs import RunRecord

    record = RunRecord.read(folder)
    payload = record.to_dict()
    payload["name"] = folder.name
    payload["curve"] = record.curve()
    return json.loads(json.dumps(payload, default=str))


def _list_datasets(roots: list[Path]) -> list[str]:
    files: list[str] = []
    for root in roots:
        for path in sorted(Path(root).expanduser().rglob("*")):
            if path.suffix.lower() in DATASET_SUFFIXES and path.is_file() and not any(
                part.startswith(".") for part in path.parts
            ):
                files.append(str(path.resolve()))
                if len(files) >= MAX_LISTED:
                    return files
    return files


def _inspect(path: Path, model: str | None) -> dict[str, Any]:
    from infuse.data import inspect_file

    with tempfile.TemporaryDirectory() as folder:
        kwargs: dict[str, Any] = {"histogram_png": Path(folder) / "h.png"}
        if model:
            kwargs["model"] = model
        report = inspect_file(path, **kwargs)
    payload = report.to_dict()
    payload.pop("histogram_png", None)
    payload["token_lengths"] = list(report.token_lengths)
    return payload


def _verdict(settings: Any, assistant: Any) -> dict[str, Any]:
    from infuse.methods.profile import AssistantProfile

    if settings.profile is None:
        return {"available": False,
                "message": "No assistant profile: run `infuse eval` and start the server with --profile FILE."}
    profile_path = Path(settings.profile).expanduser()
    profile = AssistantProfile.read(profile_path)
    folder = profile_path if profile_path.is_dir() else profile_path.parent
    results = None
    results_path = folder / "results.json"
    if results_path.is_file():
        data = json.loads(results_path.read_text(encoding="utf-8"))
        results = {key: data.get(key) for key in ("methods", "findings", "skipped", "recommendation", "meta")}
    served = None
    if assistant is not None and "infuse-auto" in getattr(assistant, "models", {}):
        served = assistant.models["infuse-auto"].description
    return {"available": True, "profile_path": str(profile_path), "profile": profile.to_dict(),
            "results": results, "results_path": str(results_path) if results else None,
            "auto_serves": served}
