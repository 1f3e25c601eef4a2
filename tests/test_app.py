"""The web app (``efficientpose serve``) as a user and an attacker meet it: a real server in a subprocess, real
uploads, Debian's Chromium through Playwright, SIGKILL mid-job, 50 pollers, and every refused request."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from helpers_app import Server, children, figure_video, start_server
from test_analysis_report import CHROMIUM, CHROMIUM_ARGS

from efficientpose.outputs import video_csv_header

# The jobs run the real RT model, whose weights come from ../shared (a data-free run would wait on them).
pytestmark = pytest.mark.data

pytest.importorskip("starlette", reason="the app extra is not installed (pip install 'efficientpose[app]')")
pytest.importorskip("av", reason="the app extra is not installed (pip install 'efficientpose[app]')")


def wait_js(page, expression: str, timeout: float = 30.0) -> object:
    """Poll a JavaScript expression until it is truthy (Playwright's wait_for_function evaluates strings with
    eval, which the app's Content-Security-Policy forbids; page.evaluate does not)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.2)
    return value


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared: Path):
    s = start_server(tmp_path_factory.mktemp("app-data"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def squats(data_dir: Path) -> Path:
    return data_dir / "video" / "squats_front.mp4"


@pytest.fixture(scope="module")
def done_session(server: Server, browser, squats: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The real squat clip uploaded through the page, followed to its result; what the browser saw."""
    page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.set_input_files("#file", str(squats))
    page.fill("input[name=subject]", "Ann")
    page.fill("input[name=height]", "1.68")
    page.fill("textarea[name=note]", "first session")
    page.click("#send")
    page.wait_for_url("**/sessions/*", timeout=60_000)
    sid = page.url.rstrip("/").rsplit("/", 1)[1]
    wait_js(page, "(document.querySelector('#progress-text')?.textContent || '').includes('frames') "
                           "|| document.querySelector('#repetitions') !== null", 120)
    seen_progress = page.evaluate("document.querySelector('#progress-text')?.textContent || ''")
    wait_js(page, "document.querySelector('#repetitions') !== null", 240)
    result = {"id": sid, "page": page, "errors": errors, "progress": seen_progress,
              "repetitions": page.inner_text("#repetitions")}
    yield result
    page.close()


def test_end_to_end_upload_progress_result(done_session: dict, server: Server) -> None:
    assert done_session["repetitions"].startswith("3 repetitions of knee flexion"), done_session["repetitions"]
    job = server.status(done_session["id"])
    assert job["status"] == "done" and job["frames_done"] == job["frames_total"] == 65
    page = done_session["page"]
    assert "height is not used" in page.inner_text("main") or "height" in page.inner_text(".meta")
    assert not done_session["errors"], done_session["errors"]


def test_video_plays_in_chromium(done_session: dict) -> None:
    page = done_session["page"]
    wait_js(page, "document.querySelector('#video').readyState >= 2", 20)
    start = page.evaluate("document.querySelector('#video').play().then(() => document.querySelector('#video')"
                          ".currentTime)")
    wait_js(page, f"document.querySelector('#video').currentTime > {start} + 0.5", 20)
    width = page.evaluate("document.querySelector('#video').videoWidth")
    assert width == 720


def test_csv_download(done_session: dict, tmp_path: Path) -> None:
    page = done_session["page"]
    with page.expect_download() as info:
        page.click("text=keypoints (CSV)")
    path = tmp_path / "k.csv"
    info.value.save_as(path)
    assert info.value.suggested_filename == "squats_front-csv.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == video_csv_header(detection=True) and len(rows) == 66  # the subject, with its box
    assert [int(r[0]) for r in rows[1:]] == list(range(65))
    head_y = [float(r[3]) for r in rows[1:] if r[3]]
    assert len(head_y) > 60 and all(0 < y < 1280 for y in head_y)


def test_report_and_subject_pages(done_session: dict, server: Server) -> None:
    page = done_session["page"]
    frame = page.frame_locator("iframe.report")
    assert "Movement analysis" in frame.locator("h1").inner_text(timeout=10_000)
    page.click("header >> text=Subjects")
    page.click("text=Ann")
    assert "squats_front.mp4" in page.inner_text("table")


def test_photo_upload(server: Server, data_dir: Path) -> None:
    attack = '<img src=x onerror="alert(1)">'
    status, answer = server.upload((data_dir / "MPII-sample.jpg").read_bytes(), "sample.jpg",
                                   {"subject": attack, "note": attack})
    assert status == 201, answer
    assert server.wait(answer["id"], 120)["status"] == "done"
    page = server.request("GET", f"/sessions/{answer['id']}")[2].decode()
    assert attack not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page  # shown, never run
    code, headers, body = server.request("GET", f"/sessions/{answer['id']}/files/image")
    assert code == 200 and headers["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"


# ------------------------------------------------------------------------------------------------ security


def test_csp_and_headers_on_every_answer(server: Server, done_session: dict) -> None:
    sid = done_session["id"]
    for path in ("/", f"/sessions/{sid}", f"/api/sessions/{sid}", "/static/app.js", "/nowhere",
                 f"/sessions/{sid}/files/csv"):
        code, headers, _ = server.request("GET", path)
        assert "content-security-policy" in headers, path
        assert "script-src 'self'" in headers["content-security-policy"] and "unsafe" not in \
            headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
    _, headers, _ = server.request("GET", f"/sessions/{sid}/files/report")
    assert "sandbox" in headers["content-security-policy"] and "script-src" not in headers["content-security-policy"]
    _, headers, _ = server.request("GET", f"/sessions/{sid}/files/csv?download=1")
    assert headers["content-disposition"].startswith("attachment")


def test_host_header_refused(server: Server) -> None:
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.nip.io", f"127.0.0.1:{server.port + 1}"):
        code, _, body = server.request("GET", "/", host=host)
        assert code == 403 and b"Host header" in body, host
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}"):
        assert server.request("GET", "/", host=host)[0] == 200


def test_state_changes_need_same_origin(server: Server, done_session: dict) -> None:
    sid = done_session["id"]
    for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/x"}, {"Origin": f"http://localhost:{server.port + 1}"}):
        code, _, _ = server.request("POST", f"/sessions/{sid}/delete", b"", headers)
        assert code == 403, headers
    assert server.status(sid)["status"] == "done"


PROBES = ["../../sessions.sqlite3", "..%2F..%2Fsessions.sqlite3", "%2e%2e%2f%2e%2e%2fsessions.sqlite3",
          "....//....//sessions.sqlite3", "/etc/passwd", "%2Fetc%2Fpasswd", "..\\..\\sessions.sqlite3", "input",
          "input.mp4", "out/keypoints.csv", "%00", "csv/../../input.mp4"]


def test_path_traversal_in_every_file_parameter(server: Server, done_session: dict) -> None:
    sid = done_session["id"]
    secret = (server.data / "sessions.sqlite3").read_bytes()[:16]
    for probe in PROBES:
        for path in (f"/sessions/{sid}/files/{probe}", f"/sessions/{probe}", f"/sessions/{probe}/files/csv",
                     f"/api/sessions/{probe}", f"/static/{probe}", f"/subjects/{probe}",
                     f"/compare?a={probe}&b={sid}", f"/compare?a={sid}&b={probe}"):
            code, _, body = server.request("GET", path)
            assert code in (400, 404), (path, code)
            assert secret not in body and b"root:" not in body and b"\x00\x00\x00 ftyp" not in body, path
    # the upload itself is never served back
    code, _, _ = server.request("GET", f"/sessions/{sid}/files/input")
    assert code == 404


def test_token_required_beyond_loopback(tmp_path: Path) -> None:
    s = start_server(tmp_path / "data", host="0.0.0.0")
    try:
        assert "?token=" in s.url
        token = s.url.split("?token=")[1]
        host = f"127.0.0.1:{s.port}"
        assert s.request("GET", "/", host=host)[0] == 401
        assert s.request("GET", "/api/sessions/" + "0" * 32, host=host)[0] == 401
        assert s.request("GET", "/", host=host, headers={"Cookie": "efficientpose_token=wrong"})[0] == 403
        assert s.request("GET", "/?token=wrong", host=host)[0] == 403
        code, headers, _ = s.request("GET", f"/?token={token}", host=host)
        assert code == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        value = cookie.split(";")[0]
        assert s.request("GET", "/", host=host, headers={"Cookie": value})[0] == 200
        assert s.request("GET", "/", host="evil.example", headers={"Cookie": value})[0] == 403
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------------ bad uploads


def test_bad_uploads_get_a_message_and_leave_nothing(tmp_path: Path, squats: Path) -> None:
    data = tmp_path / "data"
    s = start_server(data, "--max-upload", "200K")
    whole = squats.read_bytes()
    cases = {
        "empty.mp4": (b"", "empty.mp4: the file is empty"),
        "notes.mp4": (b"these are my notes, not a video\n" * 10, "notes.mp4: not a photo or video"),
        "cut.mp4": (whole[:150_000], "cut.mp4: not a readable video"),
        "big.mp4": (whole, "larger than the upload limit of 200.0 KiB"),
        "../../escape.mp4": (whole[:1000], "must not contain a folder path"),
        "..\\escape.jpg": (b"\xff\xd8\xff" + b"0" * 100, "must not contain a folder path"),
    }
    try:
        for name, (content, message) in cases.items():
            status, answer = s.upload(content, name)
            assert 400 <= status < 500, (name, status, answer)
            assert message in answer["error"], (name, answer)
            assert "\n" not in answer["error"]
        # a body without a declared length, and a client that goes away half-way through its upload
        code, _, body = s.request("POST", "/upload?filename=a.mp4", None, {**s.origin(),
                                                                           "Transfer-Encoding": "chunked"})
        assert code == 411 and b"Content-Length" in body
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(f"POST /upload?filename=gone.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
                         f"Origin: http://127.0.0.1:{s.port}\r\nContent-Length: 150000\r\n\r\n".encode()
                         + whole[:60_000])
            time.sleep(0.5)
        time.sleep(0.5)
        assert list((data / "sessions").iterdir()) == [] and list((data / "tmp").iterdir()) == []
        with sqlite3.connect(data / "sessions.sqlite3") as db:
            assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
        assert not (tmp_path / "escape.mp4").exists() and not (data.parent / "escape.mp4").exists()
    finally:
        s.stop()


def test_bad_upload_message_on_the_page(tmp_path: Path, browser) -> None:
    s = start_server(tmp_path / "data", "--max-upload", "1K")
    page = browser.new_page()
    try:
        page.goto(s.url)
        page.set_input_files("#file", {"name": "notes.mp4", "mimeType": "video/mp4", "buffer": b"hello\n" * 10})
        page.click("#send")
        wait_js(page, "document.querySelector('#message').textContent.length > 0")
        assert page.inner_text("#message").startswith("notes.mp4: not a photo or video")
        page.set_input_files("#file", {"name": "big.mp4", "mimeType": "video/mp4", "buffer": b"\0" * 5000})
        page.click("#send")
        wait_js(page, "document.querySelector('#message').textContent.includes('limit')")
        assert page.inner_text("#message") == "big.mp4: larger than the upload limit of 1.0 KiB"
        assert list((tmp_path / "data" / "sessions").iterdir()) == []
    finally:
        page.close()
        s.stop()


# ------------------------------------------------------------------------------------------------ durability, load


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return {"short": figure_video(folder / "short.mp4", seconds=3, fps=10).read_bytes(),
            "long": figure_video(folder / "long.mp4", seconds=120, fps=30).read_bytes()}  # runs well past 10 s


def _rows(data: Path) -> dict[str, tuple]:
    with sqlite3.connect(data / "sessions.sqlite3") as db:
        return {r[0]: r[1:] for r in db.execute("SELECT id, status, started, finished FROM sessions")}


def test_jobs_in_order_then_sigkill_mid_job(tmp_path: Path, clips: dict[str, bytes]) -> None:
    data = tmp_path / "data"
    s = start_server(data)
    try:
        ids = []
        for i in range(3):
            status, answer = s.upload(clips["short"], f"clip{i}.mp4", {"subject": "Cy"})
            assert status == 201, answer
            ids.append(answer["id"])
        for sid in ids:
            assert s.wait(sid)["status"] == "done"
        rows = _rows(data)
        spans = sorted((rows[sid][1], rows[sid][2]) for sid in ids)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans  # never two at once
        assert [rows[sid][1] for sid in ids] == sorted(rows[sid][1] for sid in ids)  # in upload order

        status, answer = s.upload(clips["long"], "long.mp4", {"subject": "Cy"})
        victim = answer["id"]
        deadline = time.monotonic() + 120
        while s.status(victim)["frames_done"] < 10:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        workers = children(s.process.pid)
        assert workers, "the job runs in a child process"
        os.kill(s.process.pid, signal.SIGKILL)
        s.process.wait()
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "the worker outlived the server"
    finally:
        s.stop()

    s = start_server(data, port=s.port)
    try:
        job = s.status(victim)
        assert job["status"] == "interrupted" and "server stopped" in job["error"]
        assert not list((data / "sessions" / victim).glob("work-*"))
        for sid in ids:  # the other sessions are intact, files included
            assert s.status(sid)["status"] == "done"
            assert s.request("GET", f"/sessions/{sid}/files/csv")[0] == 200
        code, _, page = s.request("GET", f"/compare?a={ids[0]}&b={ids[1]}")
        assert code == 200 and b"clip0.mp4" in page and b"clip1.mp4" in page
        code, _, report = s.request("GET", f"/compare/report?a={ids[0]}&b={ids[1]}")
        assert code == 200 and b"epetitions" in report  # the analysis's own comparison of the two sessions
        code, _, page = s.request("GET", "/subjects/Cy")
        assert code == 200 and page.count(b"/sessions/") >= 4 and b'action="/compare"' in page
        code, _, page = s.request("GET", f"/sessions/{victim}")
        assert b"interrupted" in page and b"Run again" in page
        assert s.request("POST", f"/sessions/{victim}/rerun", b"", s.origin())[0] == 303
        assert s.status(victim)["status"] in ("queued", "running")
        # while it runs: cancel it, then delete a finished session and its files
        s.wait(victim, 60, until=("running",))
        assert s.request("POST", f"/sessions/{victim}/cancel", b"", s.origin())[0] == 303
        assert s.wait(victim, 30)["status"] == "cancelled"
        assert s.request("POST", f"/sessions/{ids[0]}/delete", b"", s.origin())[0] == 303
        assert not (data / "sessions" / ids[0]).exists() and ids[0] not in _rows(data)
        assert s.request("GET", f"/api/sessions/{ids[0]}")[0] == 404
    finally:
        s.stop()


def poll_load(s: Server, sid: str, clients: int = 50, seconds: float = 10.0) -> list[tuple[int, float]]:
    """``clients`` threads each asking for the job's status once a second for ``seconds``: (status, latency)."""
    answers: list[tuple[int, float]] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.2

    def client(k: int) -> None:
        t = start + k / clients  # spread over the second, as independent pollers would be
        while t < start + seconds:
            time.sleep(max(0.0, t - time.monotonic()))
            t0 = time.monotonic()
            try:
                code = s.request("GET", f"/api/sessions/{sid}")[0]
            except OSError:
                code = 0
            with lock:
                answers.append((code, time.monotonic() - t0))
            t += 1.0

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_fifty_pollers_during_a_job(tmp_path: Path, clips: dict[str, bytes]) -> None:
    s = start_server(tmp_path / "data")
    try:
        status, answer = s.upload(clips["long"], "long.mp4")
        sid = answer["id"]
        s.wait(sid, 120, until=("running",))
        while s.status(sid)["frames_done"] == 0:
            time.sleep(0.1)
        answers = poll_load(s, sid)
        assert len(answers) == 500
        assert all(code == 200 for code, _ in answers), {code for code, _ in answers}
        job = s.status(sid)
        assert job["status"] == "running" and job["frames_done"] < job["frames_total"]  # polled a running job
        s.request("POST", f"/sessions/{sid}/cancel", b"", s.origin())
    finally:
        s.stop()


def test_status_json_shape(server: Server, done_session: dict) -> None:
    job = server.status(done_session["id"])
    assert set(job) == {"id", "status", "error", "frames_total", "frames_done", "eta_seconds", "phase", "finished"}
    assert json.loads(json.dumps(job)) == job


# ------------------------------------------------------------------------------------------------ units


def test_analysis_api_offers_every_preset_and_passes_settings_through(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """The page offers the analysis's own presets (auto first), and a job's activity, height and every export
    reach ``analyze``; without a height the page says lengths are in pixels."""
    from types import SimpleNamespace

    from efficientpose import analysis
    from efficientpose.app import analysis_api

    assert analysis_api.activities()[0] == "auto"
    assert set(analysis_api.activities()) == set(analysis.ACTIVITIES)
    calls: list[dict] = []

    def spy(predictions, output, **kwargs):
        calls.append(kwargs)
        return SimpleNamespace(outputs={"trc": output / "keypoints.trc"}, summary={"frames": 3})

    monkeypatch.setattr(analysis, "analyze", spy)
    files, summary, notes = analysis_api.run({}, tmp_path, None, "gait", 1.7)
    assert calls[0] == {"video": None, "activity": "gait", "height_m": 1.7, "export": ("trc", "mot", "c3d")}
    assert files == {"trc": tmp_path / "keypoints.trc"} and summary == {"frames": 3} and notes == []
    assert "pixels" in analysis_api.run({}, tmp_path, None, "auto", None)[2][0]


def test_host_rules_and_sizes() -> None:
    from efficientpose.app.security import Guard
    from efficientpose.app.server import parse_size
    from efficientpose.app.uploads import UploadError, check_name

    loop = Guard(None, "127.0.0.1", 8765, None)
    assert all(loop.host_allowed(h) for h in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"))
    assert not loop.host_allowed("127.0.0.1:8766") and not loop.host_allowed("attacker.example:8765")
    wild = Guard(None, "0.0.0.0", 8765, "t")
    assert wild.host_allowed("192.168.1.20:8765") and not wild.host_allowed("rebind.attacker.example:8765")
    assert parse_size("2G") == 2 * 1024**3 and parse_size("500M") == 500 * 1024**2 and parse_size("1000") == 1000
    assert check_name("squats..final.mp4") == "squats..final.mp4"
    for bad in ("../x.mp4", "a/b.mp4", "a\\b.mp4", "..", "x\x00.mp4", ""):
        with pytest.raises(UploadError):
            check_name(bad)
