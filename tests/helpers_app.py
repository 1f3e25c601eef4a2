"""Helpers for the web app's tests and benchmark: a server in a subprocess, raw HTTP uploads, and a synthetic
squatting figure (drawn here, so that pictures of it may be committed, unlike ../shared media)."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import cv2
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running ``efficientpose serve`` subprocess."""

    process: subprocess.Popen
    host: str
    port: int
    data: Path
    url: str  #: as printed (with the token beyond loopback)
    log: list[str]  #: everything else the server and its workers printed (drained, so the pipe never fills)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                host: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request to the server on loopback; ``host`` overrides the Host header."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host or f"127.0.0.1:{self.port}")
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def origin(self) -> dict[str, str]:
        return {"Origin": f"http://127.0.0.1:{self.port}"}

    def upload(self, content: bytes, filename: str, fields: dict[str, str] | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict]:
        """POST a file as the page's script does (the body is the file; name and settings in the query)."""
        query = urlencode({"filename": filename, **(fields or {})})
        status, _, answer = self.request("POST", f"/upload?{query}", content, {
            "Content-Type": "application/octet-stream", **self.origin(), **(headers or {})})
        return status, json.loads(answer or b"{}")

    def status(self, session_id: str) -> dict:
        code, _, body = self.request("GET", f"/api/sessions/{session_id}")
        assert code == 200, body
        return json.loads(body)

    def wait(self, session_id: str, timeout: float = 180, until: tuple[str, ...] = ("done", "failed", "cancelled",
                                                                                    "interrupted")) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.status(session_id)
            if job["status"] in until:
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {session_id} still {job['status']} after {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data: Path, *args: str, host: str = "127.0.0.1", port: int | None = None) -> Server:
    """Start ``efficientpose serve`` on ``data`` and wait until it answers (the printed URL is parsed)."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "efficientpose.cli", "serve", "--data", str(data), "--host", host, "--port", str(port),
         *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = process.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"server did not start: {line}{process.stdout.read()}")
    server = Server(process, host, port, data, match.group(1), [])
    threading.Thread(target=lambda: server.log.extend(process.stdout), daemon=True).start()
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError("server did not open its port")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


# ------------------------------------------------------------------------------------- a synthetic figure


def figure_frame(depth: float, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """One RGB frame of a shaded, clothed figure facing the camera, squatting to ``depth`` (0 standing, 1 deep)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (205, 200, 190)
    img[int(0.85 * h):] = (150, 140, 125)  # floor
    cx, s = w / 2, h / 640
    knee_out = 40 * depth * s
    ankle_y = 0.83 * h
    thigh, shin = 120 * s, 125 * s
    knee_bend = math.radians(100 * depth)
    knee_y = ankle_y - shin * math.cos(knee_bend / 2)
    hip_y = knee_y - thigh * math.cos(knee_bend / 2)
    shoulder_y, head_y = hip_y - 170 * s, hip_y - 235 * s
    skin, shirt, trousers, shoes = (224, 172, 140), (40, 90, 170), (50, 50, 60), (30, 30, 30)

    def limb(a: tuple[float, float], b: tuple[float, float], colour: tuple[int, int, int], width: float) -> None:
        cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), colour, max(int(width), 1), cv2.LINE_AA)

    torso = np.array([(cx - 58 * s, shoulder_y - 8 * s), (cx + 58 * s, shoulder_y - 8 * s),
                      (cx + 46 * s, hip_y + 10 * s), (cx - 46 * s, hip_y + 10 * s)], np.int32)
    for side in (-1, 1):
        hip, knee, ankle = (cx + side * 28 * s, hip_y), (cx + side * (32 * s + knee_out), knee_y), \
            (cx + side * 34 * s, ankle_y)
        limb(hip, knee, trousers, 34 * s)
        limb(knee, ankle, trousers, 28 * s)
        cv2.ellipse(img, (int(ankle[0] + side * 6 * s), int(ankle[1] + 8 * s)), (int(20 * s), int(9 * s)), 0, 0, 360,
                    shoes, -1, cv2.LINE_AA)
        if side == 1:
            cv2.fillPoly(img, [torso], shirt, cv2.LINE_AA)
        shoulder = (cx + side * 62 * s, shoulder_y)
        reach = depth * 70 * s  # arms come forward (shorter in the image) and up for balance
        elbow = (cx + side * 72 * s, shoulder_y + (75 - reach * 0.6) * s)
        wrist = (cx + side * 70 * s, shoulder_y + (140 - reach * 1.4) * s)
        limb(shoulder, elbow, shirt, 24 * s)
        limb(elbow, wrist, skin, 18 * s)
        cv2.circle(img, (int(wrist[0]), int(wrist[1])), int(11 * s), skin, -1, cv2.LINE_AA)
    limb((cx, shoulder_y - 8 * s), (cx, head_y + 25 * s), skin, 22 * s)  # neck
    cv2.ellipse(img, (int(cx), int(head_y)), (int(30 * s), int(38 * s)), 0, 0, 360, skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(cx), int(head_y - 18 * s)), (int(31 * s), int(22 * s)), 0, 180, 360, (60, 40, 30), -1,
                cv2.LINE_AA)
    return img


def figure_video(path: Path, seconds: float = 6.0, fps: float = 10.0, squats: int = 3,
                 size: tuple[int, int] = (480, 640)) -> Path:
    """An MP4 (mp4v) of the figure doing ``squats`` squats: a video anyone may commit pictures of."""
    n = int(round(seconds * fps))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    for i in range(n):
        phase = (i / n) * squats
        depth = 0.5 - 0.5 * math.cos(2 * math.pi * phase)
        writer.write(cv2.cvtColor(figure_frame(depth, size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path
