"""Sessions in SQLite (WAL) and their folders under the data directory.

A session is one upload and its job: settings, status, progress totals and the outputs it produced. Its files
live in ``DATA/sessions/<id>/``: ``input<.ext>`` and, once the job is done, ``out/``. The row is written after
the files it names (and removed before them), so a crash leaves at most a folder without a row, which
:meth:`Store.sweep` removes at the next start.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Job states. ``interrupted``: the server stopped while the job ran; it can be re-run like a failed one.
STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINISHED = ("done", "failed", "cancelled", "interrupted")

_ID = re.compile(r"[0-9a-f]{32}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    queued REAL NOT NULL,
    subject TEXT NOT NULL,
    note TEXT NOT NULL,
    model TEXT NOT NULL,
    activity TEXT NOT NULL,
    height REAL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,
    input TEXT NOT NULL,
    frames_total INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    started REAL,
    finished REAL,
    outputs TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS sessions_subject ON sessions(subject, created);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions(status, queued);
"""


def valid_id(text: str) -> bool:
    """Whether ``text`` has the form of a session id (32 lower-case hex digits): the only ids that name folders."""
    return _ID.fullmatch(text) is not None


@dataclass
class Session:
    """One row of the sessions table."""

    id: str
    created: float
    queued: float  #: when the job was (last) queued: jobs run in this order
    subject: str
    note: str
    model: str
    activity: str
    height: float | None
    filename: str  #: the uploaded file's name, for display only (never a path)
    kind: str  #: "video" or "image"
    input: str  #: the input's file name inside the session folder
    frames_total: int | None
    status: str
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    outputs: dict[str, str] = field(default_factory=dict)  #: download name -> path relative to the session folder
    summary: dict[str, Any] = field(default_factory=dict)  #: the few numbers the pages show


class Store:
    """The sessions database and the folders it names. Thread-safe (one connection behind a lock)."""

    def __init__(self, data: Path) -> None:
        self.data = Path(data)
        self.sessions_dir = self.data / "sessions"
        self.tmp_dir = self.data / "tmp"
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data / "sessions.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def folder(self, session_id: str) -> Path:
        """The session's folder; only for well-formed ids (a request's id never reaches the file system raw)."""
        if not valid_id(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return self.sessions_dir / session_id

    def add(self, s: Session) -> None:
        """Insert a session whose files are already in place."""
        row = {**s.__dict__, "outputs": json.dumps(s.outputs), "summary": json.dumps(s.summary)}
        names = ", ".join(row)
        with self._lock:
            self._db.execute(f"INSERT INTO sessions ({names}) VALUES ({', '.join(':' + k for k in row)})", row)

    def get(self, session_id: str) -> Session | None:
        if not valid_id(session_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _session(row) if row else None

    def list(self, subject: str | None = None, limit: int = 200) -> list[Session]:
        """Newest first; only ``subject``'s sessions if given."""
        query, args = "SELECT * FROM sessions", ()
        if subject is not None:
            query, args = query + " WHERE subject = ?", (subject,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created DESC LIMIT ?", (*args, limit)).fetchall()
        return [_session(r) for r in rows]

    def subjects(self) -> list[tuple[str, int, float]]:
        """(subject, number of sessions, latest session time), most recent first."""
        with self._lock:
            rows = self._db.execute("SELECT subject, COUNT(*), MAX(created) FROM sessions GROUP BY subject "
                                    "ORDER BY MAX(created) DESC").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def update(self, session_id: str, **fields: Any) -> None:
        """Set columns of one session (``outputs``/``summary`` as dicts)."""
        for key in ("outputs", "summary"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        assignments = ", ".join(f"{k} = :{k}" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE sessions SET {assignments} WHERE id = :id", {**fields, "id": session_id})

    def next_queued(self) -> Session | None:
        """The oldest queued session: jobs run in upload order."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE status = 'queued' ORDER BY queued LIMIT 1").fetchone()
        return _session(row) if row else None

    def delete(self, session_id: str) -> None:
        """Remove the row, then the folder (a crash in between leaves a folder that :meth:`sweep` removes)."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        shutil.rmtree(self.folder(session_id), ignore_errors=True)

    def sweep(self) -> list[str]:
        """At start: jobs left running become interrupted; folders without a row, half-written job outputs and
        stale uploads are removed. Returns the interrupted ids."""
        with self._lock:
            ids = [r[0] for r in self._db.execute("SELECT id FROM sessions WHERE status = 'running'")]
            self._db.execute("UPDATE sessions SET status = 'interrupted', finished = ?, "
                             "error = 'the server stopped while this job ran' WHERE status = 'running'", (time.time(),))
            known = {r[0] for r in self._db.execute("SELECT id FROM sessions")}
        for folder in self.sessions_dir.iterdir():
            if folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                for work in folder.glob("work-*"):
                    shutil.rmtree(work, ignore_errors=True)
        for stale in self.tmp_dir.iterdir():
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        return ids


def _session(row: sqlite3.Row) -> Session:
    values = dict(row)
    values["outputs"] = json.loads(values["outputs"] or "{}")
    values["summary"] = json.loads(values["summary"] or "{}")
    return Session(**values)
