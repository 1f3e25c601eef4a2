"""The web app: pages, uploads, job status, downloads, subjects and comparison (Starlette + Jinja2).

No request value ever names a file directly: session ids must be 32 hex digits, downloads are looked up in the
session's own list of outputs, static files in a fixed table. Uploads are checked (size, name, content) before a
session exists; the session row is written after its files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from efficientpose.app import analysis_api
from efficientpose.app.jobs import Scheduler
from efficientpose.app.security import REPORT_CSP, Guard, is_loopback
from efficientpose.app.store import FINISHED, Session, Store
from efficientpose.app.uploads import UploadError, check_name, probe
from efficientpose.models.variants import VARIANTS

HERE = Path(__file__).parent
#: The only static files served (name -> media type).
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
#: Media types of the outputs a session may offer; anything else downloads as an attachment.
MEDIA = {".json": "application/json", ".csv": "text/csv", ".mp4": "video/mp4", ".png": "image/png",
         ".jpg": "image/jpeg", ".gif": "image/gif", ".bmp": "image/bmp", ".webp": "image/webp", ".html": "text/html",
         ".trc": "text/plain", ".mot": "text/plain"}
#: Outputs shown inline (our own files only); everything else is served as an attachment.
INLINE = {"video", "image", "report"}


@dataclass
class Config:
    """The server's settings (the ``serve`` command's flags)."""

    data: Path
    host: str = "127.0.0.1"
    port: int = 8765
    max_upload: int = 2 * 1024**3
    token: str | None = None  #: required beyond loopback; generated when None there


def parse_size(text: str) -> int:
    """Bytes from ``2G``, ``500M``, ``64K`` or a plain number (binary units)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(text[-1:], 1)
    number = float(text[:-1] if text[-1:] in "KMGT" else text)
    if number <= 0:
        raise ValueError(f"size must be positive: {text}")
    return int(number * scale)


def _human(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def create_app(config: Config) -> Guard:
    """The ASGI app for ``config`` (the scheduler starts and stops with it), wrapped in :class:`Guard`."""
    store = Store(config.data)
    scheduler = Scheduler(store)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["when"] = _when
    env.filters["human"] = _human

    def page(template: str, code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(**context), status_code=code)

    def not_found(what: str = "no such session") -> HTMLResponse:
        return page("error.html", 404, title="Not found", message=what)

    def session_or_none(request: Request) -> Session | None:
        return store.get(request.path_params["sid"])

    def status_of(s: Session) -> dict[str, Any]:
        p = scheduler.progress(s.id) if s.status == "running" else None
        eta = p.eta() if p else None
        return {"id": s.id, "status": s.status, "error": s.error, "frames_total": s.frames_total,
                "frames_done": p.done if p else (s.frames_total if s.status == "done" else 0),
                "eta_seconds": None if eta is None else round(eta, 1), "phase": p.phase if p else None,
                "finished": s.status in FINISHED}

    async def index(request: Request) -> HTMLResponse:
        return page("index.html", title="efficientpose", sessions=store.list(limit=30), subjects=store.subjects(),
                    models=list(VARIANTS), activities=analysis_api.activities(), max_upload=config.max_upload)

    async def upload(request: Request) -> JSONResponse:
        try:
            session = await _receive_upload(request)
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        scheduler.wake()
        return JSONResponse({"id": session.id, "url": f"/sessions/{session.id}"}, status_code=201)

    async def _receive_upload(request: Request) -> Session:
        """The body is the file itself (no multipart), streamed into ``DATA/tmp`` and counted against the limit;
        the name and settings come in the query string."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise UploadError("the upload must declare its length (Content-Length)", 411)
        name = check_name(request.query_params.get("filename", ""))
        if int(length) > config.max_upload:
            raise UploadError(f"{name}: larger than the upload limit of {_human(config.max_upload)}", 413)
        fields = _fields(request.query_params)
        temp = store.tmp_dir / f"{uuid.uuid4().hex}.upload"
        try:
            size, buffer = 0, bytearray()
            with open(temp, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > config.max_upload:
                        raise UploadError(f"{name}: larger than the upload limit of {_human(config.max_upload)}", 413)
                    buffer += chunk
                    if len(buffer) >= 1 << 20:
                        await run_in_threadpool(f.write, bytes(buffer))
                        buffer.clear()
                await run_in_threadpool(f.write, bytes(buffer))
            return await run_in_threadpool(_accept_upload, temp, name, fields)
        except ClientDisconnect:
            raise UploadError(f"{name}: the upload was interrupted") from None
        finally:
            temp.unlink(missing_ok=True)

    def _fields(form: Mapping[str, str]) -> dict[str, Any]:
        model = str(form.get("model") or "rt")
        if model not in VARIANTS:
            raise UploadError(f"unknown model {model!r}")
        activity = str(form.get("activity") or "auto")
        if activity not in analysis_api.activities():
            raise UploadError(f"unknown activity {activity!r}")
        height_text = str(form.get("height") or "").strip().replace(",", ".")
        try:
            height = float(height_text) if height_text else None
        except ValueError:
            raise UploadError(f"height {height_text!r} is not a number (metres, e.g. 1.75)") from None
        if height is not None and not 0.5 <= height <= 2.5:
            raise UploadError(f"height {height:g} m is outside 0.5-2.5 m")
        subject = " ".join(str(form.get("subject") or "").replace("/", "-").split())[:100] or "unnamed"
        note = str(form.get("note") or "").strip()[:2000]
        return {"model": model, "activity": activity, "height": height, "subject": subject, "note": note}

    def _accept_upload(temp: Path, name: str, fields: dict[str, Any]) -> Session:
        """Check the received file, move it into a new session folder, then write the row."""
        probed = probe(temp, name)
        sid = uuid.uuid4().hex
        folder = store.folder(sid)
        folder.mkdir()
        try:
            os.replace(temp, folder / f"input{probed.suffix}")
            now = time.time()
            session = Session(id=sid, created=now, queued=now, filename=name, kind=probed.kind,
                              input=f"input{probed.suffix}", frames_total=probed.frames, status="queued", **fields)
            store.add(session)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return session

    async def session_page(request: Request) -> HTMLResponse:
        s = session_or_none(request)
        if s is None:
            return not_found()
        others = [o for o in store.list(subject=s.subject)
                  if o.id != s.id and o.status == "done" and o.kind == "video" == s.kind]
        return page("session.html", title=s.filename, s=s, status=status_of(s), others=others,
                    downloads=_downloads(s))

    async def session_status(request: Request) -> JSONResponse:
        s = session_or_none(request)
        if s is None:
            return JSONResponse({"error": "no such session"}, status_code=404)
        return JSONResponse(status_of(s))

    async def cancel(request: Request) -> Response:
        s = session_or_none(request)
        if s is None:
            return not_found()
        await run_in_threadpool(scheduler.cancel, s.id)
        return RedirectResponse(f"/sessions/{s.id}", status_code=303)

    async def rerun(request: Request) -> Response:
        s = session_or_none(request)
        if s is None:
            return not_found()
        if s.status not in ("failed", "cancelled", "interrupted", "done"):
            return page("error.html", 409, title="Cannot re-run", message=f"the job is {s.status}")
        store.update(s.id, status="queued", outputs={}, summary={}, error=None, started=None, finished=None,
                     queued=time.time())
        shutil.rmtree(store.folder(s.id) / "out", ignore_errors=True)  # the row no longer names these files
        scheduler.wake()
        return RedirectResponse(f"/sessions/{s.id}", status_code=303)

    async def delete(request: Request) -> Response:
        s = session_or_none(request)
        if s is None:
            return not_found()
        if s.status in ("queued", "running"):
            await run_in_threadpool(scheduler.cancel, s.id)
            for _ in range(100):  # the worker is terminated within a poll interval
                current = store.get(s.id)
                if current is None or current.status != "running":
                    break
                await asyncio.sleep(0.1)
        await run_in_threadpool(store.delete, s.id)
        for folder in (store.data / "compare").glob(f"*{s.id}*"):
            shutil.rmtree(folder, ignore_errors=True)
        return RedirectResponse("/", status_code=303)

    async def download(request: Request) -> Response:
        s = session_or_none(request)
        name = request.path_params["name"]
        if s is None or name not in s.outputs:
            return not_found("no such file")
        folder = store.folder(s.id)
        path = (folder / s.outputs[name]).resolve()
        if folder.resolve() not in path.parents or not path.is_file():
            return not_found("no such file")
        media = MEDIA.get(path.suffix, "application/octet-stream")
        inline = name in INLINE and request.query_params.get("download") is None
        stem = Path(s.filename).stem
        filename = f"{stem}-{name}{path.suffix}"
        response = FileResponse(path, media_type=media, filename=filename,
                                content_disposition_type="inline" if inline else "attachment")
        if name == "report":
            response.headers["content-security-policy"] = REPORT_CSP
        return response

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return not_found("no such file")
        return FileResponse(HERE / "static" / name, media_type=STATIC[name])

    async def subjects(request: Request) -> HTMLResponse:
        return page("subjects.html", title="Subjects", subjects=store.subjects())

    async def subject(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        sessions = store.list(subject=name)
        if not sessions:
            return not_found("no such subject")
        return page("subject.html", title=name, subject=name, sessions=sessions)

    async def compare(request: Request) -> HTMLResponse:
        a, b = store.get(request.query_params.get("a", "")), store.get(request.query_params.get("b", ""))
        if a is None or b is None:
            return not_found("choose two sessions to compare")
        if a.status != "done" or b.status != "done" or a.kind != "video" or b.kind != "video":
            return page("error.html", 409, title="Cannot compare", message="both sessions must be finished videos")
        await run_in_threadpool(_comparison, a, b)
        return page("compare.html", title="Compare sessions", a=a, b=b)

    def _comparison(a: Session, b: Session) -> Path:
        """The analysis's comparison page of two sessions, written once under ``DATA/compare/<a>-<b>/``."""
        folder = store.data / "compare" / f"{a.id}-{b.id}"
        path = folder / "compare.html"
        if not path.is_file():
            analyses = (store.folder(a.id) / "out" / "analysis", store.folder(b.id) / "out" / "analysis")
            path = analysis_api.compare(analyses, folder)
        return path

    async def comparison_report(request: Request) -> Response:
        a, b = store.get(request.query_params.get("a", "")), store.get(request.query_params.get("b", ""))
        path = store.data / "compare" / f"{a.id}-{b.id}" / "compare.html" if a and b else None
        if path is None or not path.is_file():
            return not_found("no comparison report")
        return FileResponse(path, media_type="text/html", headers={"content-security-policy": REPORT_CSP})

    def _downloads(s: Session) -> list[tuple[str, str]]:
        labels = {"video": "annotated video (MP4)", "image": "annotated photo", "json": "keypoints (JSON)",
                  "csv": "keypoints (CSV)", "angles": "angles (CSV)", "summary": "summary (JSON)",
                  "report": "report (HTML)", **analysis_api.EXPORTS}
        return [(name, labels.get(name, name)) for name in s.outputs]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        interrupted = store.sweep()
        if interrupted:
            print(f"{len(interrupted)} job(s) were running when the server last stopped: marked interrupted")
        scheduler.start()
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)
            store.close()

    sid = "{sid:str}"
    routes = [
        Route("/", index), Route("/upload", upload, methods=["POST"]),
        Route(f"/sessions/{sid}", session_page), Route(f"/api/sessions/{sid}", session_status),
        Route(f"/sessions/{sid}/cancel", cancel, methods=["POST"]),
        Route(f"/sessions/{sid}/rerun", rerun, methods=["POST"]),
        Route(f"/sessions/{sid}/delete", delete, methods=["POST"]),
        Route(f"/sessions/{sid}/files/{{name:str}}", download),
        Route("/subjects", subjects), Route("/subjects/{name:str}", subject), Route("/compare", compare),
        Route("/compare/report", comparison_report),
        Route("/static/{name:str}", static),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store, app.state.scheduler = store, scheduler
    return Guard(app, config.host, config.port, config.token)


def serve(config: Config) -> None:
    """Run the app with uvicorn until interrupted; prints the address (with the token beyond loopback)."""
    import uvicorn

    if config.token is None and not is_loopback(config.host):
        config.token = secrets.token_urlsafe(32)
    app = create_app(config)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{shown}:{config.port}/" + (f"?token={config.token}" if config.token else "")
    print(f"efficientpose serve: {url}  (data: {config.data}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)
