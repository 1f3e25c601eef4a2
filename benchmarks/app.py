"""The web app under load, and its README screenshots.

    python benchmarks/app.py                 # 50 pollers against a running job: slowest answer, job slow-down
    python benchmarks/app.py --screenshots docs   # also the upload and result pages in headless Chromium

The job is a synthetic figure (tests/helpers_app.py) squatting for a minute (640x480, 10 fps), model RT. In
each round the job runs twice, once with 50 clients polling its status once a second for 10 s and once with no
one watching (the order alternates). The slow-down compares the keypoint rate (frames per second, read from the
job's own progress) over the same 10 s window in the two runs. Targets (issue 17): slowest answer under 1 s,
slow-down under 25 %.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]
os.environ.setdefault("EFFICIENTPOSE_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights" / "efficientpose"))

from helpers_app import Server, figure_video, start_server  # noqa: E402
from test_app import poll_load  # noqa: E402

WINDOW = 10.0


def run_job(server: Server, clip: bytes, watched: bool) -> dict:
    """Upload ``clip`` and measure its keypoint rate over a 10 s window (with 50 pollers if ``watched``)."""
    status, answer = server.upload(clip, "figure.mp4")
    assert status == 201, answer
    sid = answer["id"]
    server.wait(sid, 300, until=("running",))
    while server.status(sid)["frames_done"] < 20:  # the model is loaded and frames flow
        time.sleep(0.1)
    t0, f0 = time.monotonic(), server.status(sid)["frames_done"]
    answers = poll_load(server, sid, 50, WINDOW) if watched else time.sleep(WINDOW + 0.2)
    t1, f1 = time.monotonic(), server.status(sid)["frames_done"]
    job = server.status(sid)
    assert job["status"] == "running" and f1 < job["frames_total"], "the clip is too short for the window"
    server.request("POST", f"/sessions/{sid}/cancel", b"", server.origin())
    server.wait(sid, 60)
    result = {"rate": (f1 - f0) / (t1 - t0)}
    if watched:
        latencies = sorted(latency for _, latency in answers)
        result.update(requests=len(answers), ok=sum(code == 200 for code, _ in answers), slowest=latencies[-1],
                      median=latencies[len(latencies) // 2])
    return result


def screenshots(server: Server, clip: Path, folder: Path) -> None:
    """The upload page (file chosen, fields filled) and the result page, as small PNGs."""
    from playwright.sync_api import sync_playwright
    from test_analysis_report import CHROMIUM, CHROMIUM_ARGS

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(server.url)
        page.set_input_files("#file", str(clip))
        page.fill("input[name=subject]", "Demo figure")
        page.fill("input[name=height]", "1.75")
        page.fill("textarea[name=note]", "Three body-weight squats, front view")
        page.screenshot(path=str(folder / "app-upload.png"))
        page.click("#send")
        page.wait_for_url("**/sessions/*")
        sid = page.url.rsplit("/", 1)[1]
        server.wait(sid, 300)
        page.reload()
        page.evaluate("document.querySelector('#video').currentTime = 3.0")
        time.sleep(1.0)
        page.set_viewport_size({"width": 1100, "height": 1000})
        page.screenshot(path=str(folder / "app-result.png"))
        browser.close()
    from PIL import Image

    for name in ("app-upload.png", "app-result.png"):
        image = Image.open(folder / name).convert("RGB")
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(folder / name, optimize=True)
        print(f"{folder / name}: {(folder / name).stat().st_size // 1024} KiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--screenshots", type=Path, help="write app-upload.png and app-result.png into this folder")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ.setdefault("EFFICIENTPOSE_HOME", str(tmp_path / "home"))
        long_clip = figure_video(tmp_path / "long.mp4", seconds=90, fps=10).read_bytes()
        short_clip = figure_video(tmp_path / "squats-demo.mp4", seconds=6, fps=10)
        server = start_server(tmp_path / "data")
        try:
            status, answer = server.upload(short_clip.read_bytes(), "warm-up.mp4")  # model conversion, backend choice
            server.wait(answer["id"], 300)
            if args.screenshots:
                screenshots(server, short_clip, args.screenshots)
            watched, alone = [], []
            for r in range(args.rounds):
                for w in ((True, False) if r % 2 == 0 else (False, True)):
                    (watched if w else alone).append(run_job(server, long_clip, w))
        finally:
            server.stop()
    slowest = max(x["slowest"] for x in watched)
    requests, ok = sum(x["requests"] for x in watched), sum(x["ok"] for x in watched)
    rate_alone = sum(x["rate"] for x in alone) / len(alone)
    rate_watched = sum(x["rate"] for x in watched) / len(watched)
    slowdown = 1 - rate_watched / rate_alone
    print(f"50 clients x 1 request/s x {WINDOW:.0f} s, {args.rounds} round(s): {ok}/{requests} answered, "
          f"slowest {slowest * 1000:.0f} ms (target < 1000), median "
          f"{sorted(x['median'] for x in watched)[len(watched) // 2] * 1000:.1f} ms")
    print(f"job keypoint rate: {rate_alone:.1f} frames/s alone, {rate_watched:.1f} with the pollers: "
          f"slow-down {100 * slowdown:.1f} % (target < 25 %)")
    if args.json:
        args.json.write_text(json.dumps({"watched": watched, "alone": alone, "slowest": slowest,
                                         "slowdown": slowdown}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
