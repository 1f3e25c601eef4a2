"""The job queue: one worker process at a time (never two models at once), in upload order, cancellable.

A thread of the server takes the oldest queued session, starts :func:`efficientpose.app.worker.main` in a fresh
process, relays its progress into memory (status requests never touch the worker), and when it ends moves its
work folder into place and writes the row last. A crash of the worker only fails its job.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from efficientpose.app import worker
from efficientpose.app.store import Session, Store


@dataclass
class Progress:
    """Live progress of the running job (kept in memory only)."""

    session_id: str
    total: int | None
    done: int = 0
    phase: str = "starting"  #: what the worker says it is doing
    started: float = 0.0  #: monotonic time the job started
    first_frame: float | None = None  #: monotonic time of the first progress message (model loaded)

    def eta(self) -> float | None:
        """Seconds left, from the frame rate since the first frame, or None before there is one."""
        if self.first_frame is None or not self.total or self.done <= 0:
            return None
        rate = self.done / max(time.monotonic() - self.first_frame, 1e-6)
        return max(self.total - self.done, 0) / rate


class Scheduler:
    """Runs queued sessions one after another in a worker process."""

    def __init__(self, store: Store, poll: float = 0.2) -> None:
        self.store, self.poll = store, poll
        self._ctx = multiprocessing.get_context("spawn")  # a clean process: no server threads or sockets inherited
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._thread = threading.Thread(target=self._loop, name="efficientpose-jobs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs; a running job is ended and left interrupted (re-runnable)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def wake(self) -> None:
        """A job was queued."""
        self._wake.set()

    def progress(self, session_id: str) -> Progress | None:
        with self._lock:
            p = self._progress
        return p if p is not None and p.session_id == session_id else None

    def cancel(self, session_id: str) -> None:
        """Cancel a queued or running job (a running worker is terminated)."""
        with self._lock:
            running = self._progress is not None and self._progress.session_id == session_id
            if running:
                self._cancel.add(session_id)
        if not running:
            s = self.store.get(session_id)
            if s is not None and s.status == "queued":
                self.store.update(session_id, status="cancelled", finished=time.time())

    def _loop(self) -> None:
        while not self._stop.is_set():
            session = self.store.next_queued()
            if session is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                self._run(session)
            except Exception as exc:  # noqa: BLE001 - one job's trouble (e.g. a full disk) must not stop the queue
                with self._lock:
                    self._progress = None
                with contextlib.suppress(Exception):
                    self.store.update(session.id, status="failed", finished=time.time(),
                                      error=f"the job could not be run: {type(exc).__name__}: {exc}")

    def _run(self, s: Session) -> None:
        folder = self.store.folder(s.id)
        work = folder / f"work-{uuid.uuid4().hex[:8]}"
        spec = {"input": str(folder / s.input), "work": str(work), "kind": s.kind, "model": s.model,
                "filename": s.filename, "activity": s.activity, "height": s.height}
        self.store.update(s.id, status="running", started=time.time(), error=None, finished=None)
        progress = Progress(s.id, s.frames_total, started=time.monotonic())
        with self._lock:
            self._progress = progress
        receive, send = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(target=worker.main, args=(spec, send), name=f"efficientpose-job-{s.id[:8]}",
                                    daemon=True)
        process.start()
        send.close()
        result, outcome = None, None
        try:
            while outcome is None:
                if self._stop.is_set():
                    outcome = "interrupted"
                elif s.id in self._cancel:
                    outcome = "cancelled"
                elif receive.poll(self.poll):
                    try:
                        message = receive.recv()
                    except (EOFError, OSError):
                        outcome = "crashed"
                        continue
                    if message[0] == "phase":
                        progress.phase = message[1]
                    elif message[0] == "progress":
                        progress.done = message[1]
                        progress.first_frame = progress.first_frame or time.monotonic()
                    else:
                        result, outcome = message, message[0]
                elif not process.is_alive() and not receive.poll(0):
                    outcome = "crashed"
        finally:
            if process.is_alive() and outcome != "done":
                process.terminate()
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
            receive.close()
        self._finish(s, work, outcome or "crashed", result, process.exitcode)
        with self._lock:
            self._progress = None
            self._cancel.discard(s.id)

    def _finish(self, s: Session, work: Path, outcome: str, result: tuple | None, exitcode: int | None) -> None:
        now = time.time()
        if outcome == "done" and result is not None:
            _, outputs, summary = result
            out = self.store.folder(s.id) / "out"
            shutil.rmtree(out, ignore_errors=True)
            work.rename(out)
            self.store.update(s.id, status="done", finished=now, outputs={k: f"out/{v}" for k, v in outputs.items()},
                              summary=summary, error=None)
            return
        shutil.rmtree(work, ignore_errors=True)
        if outcome == "error" and result is not None:
            self.store.update(s.id, status="failed", finished=now, error=result[1])
        elif outcome == "cancelled":
            self.store.update(s.id, status="cancelled", finished=now, error=None)
        elif outcome == "interrupted":
            self.store.update(s.id, status="interrupted", finished=now, error="the server stopped while this job ran")
        else:
            self.store.update(s.id, status="failed", finished=now,
                              error=f"the worker process stopped unexpectedly (exit code {exitcode})")
