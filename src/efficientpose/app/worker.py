"""One job, run in its own process: predict (keypoints, annotated copy), the browser video, the analysis.

The process talks to the server through a pipe: ``("progress", frames_done)`` and ``("phase", text)``, then
``("done", outputs, summary)`` or ``("error", message)``. Everything goes into a fresh work folder; the server
moves it into place and records the session row afterwards. The process ends itself if the server dies (no orphan
job writing on).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: Seconds between progress messages.
PROGRESS_EVERY = 0.25


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process when the server dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(spec: dict[str, Any], conn: Connection) -> None:
    """Process entry point: run the job described by ``spec`` and report through ``conn``."""
    _die_with_parent()
    parent = os.getppid()
    try:
        outputs, summary = run(spec, _progress(conn, parent), lambda text: conn.send(("phase", text)))
        conn.send(("done", outputs, summary))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's one-line error
        from efficientpose.errors import EfficientPoseError

        message = str(exc) if isinstance(exc, EfficientPoseError) else f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
        conn.send(("error", " ".join(message.replace(spec["input"], spec["filename"]).split())))
    finally:
        conn.close()


def _progress(conn: Connection, parent: int) -> Callable[..., None]:
    last = [0.0]

    def report(done: int, force: bool = False) -> None:
        if os.getppid() != parent:  # the server is gone (where prctl is unavailable)
            os._exit(1)
        now = time.monotonic()
        if force or now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            conn.send(("progress", done))

    return report


def run(spec: dict[str, Any], on_frame: Callable[..., None], on_phase: Callable[[str], None] = print,
        ) -> tuple[dict[str, str], dict[str, Any]]:
    """Run the job into ``spec["work"]``: (download name -> file name in the work folder, summary for the pages).
    ``on_frame`` hears the frames done, ``on_phase`` what the job is doing."""
    from efficientpose.inference.estimator import PoseEstimator
    from efficientpose.predict import PredictOptions, predict_files, predict_video

    source, work = Path(spec["input"]), Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    on_phase("loading the model")
    estimator = PoseEstimator(spec["model"])
    options = PredictOptions(output=work, formats=("json", "csv"), draw=True, smooth=False,
                             progress=False, on_frame=on_frame)
    if spec["kind"] == "image":
        report = predict_files([source], estimator, options)
        if report.errors:
            raise report.errors[0]
        on_frame(1, True)
        drawn = next(p for p in report.outputs if p.suffix not in (".json", ".csv"))
        return ({"json": "predictions.json", "csv": "predictions.csv", "image": drawn.name},
                {"frames": 1, "keypoints": _image_keypoints(work / "predictions.json")})
    on_phase("finding keypoints")
    written = predict_video(source, estimator, options, stem="keypoints")
    return _video_outputs(spec, work, written, on_frame, on_phase)


def _video_outputs(spec: dict[str, Any], work: Path, written: list[Path], on_frame: Callable[..., None],
                   on_phase: Callable[[str], None],
                   ) -> tuple[dict[str, str], dict[str, Any]]:
    from dataclasses import replace

    from efficientpose.app import analysis_api
    from efficientpose.app.media import browser_video
    from efficientpose.io.predictions import read_video_predictions

    predictions = read_video_predictions(work / "keypoints.json")
    on_frame(len(predictions.frames), True)
    drawn = next(p for p in written if p.suffix == ".mp4")
    on_phase("encoding the video for the browser")
    browser_video(drawn, work / "video.mp4", float(predictions.fps))
    drawn.unlink()
    predictions = replace(predictions, file=spec["filename"])  # the report names the upload, not its stored path
    on_phase("analysing the movement")
    files, summary, notes = analysis_api.run(predictions, work / "analysis", Path(spec["input"]),
                                             spec["activity"], spec.get("height"))
    outputs = {"json": "keypoints.json", "csv": "keypoints.csv", "video": "video.mp4"}
    labels = {"html": "report", "csv": "angles", "summary": "summary"}
    for key, path in files.items():
        name = labels.get(key, key)
        if name in outputs or key.startswith("plot_"):
            continue
        outputs[name] = str(path.relative_to(work))
    reps = summary.get("repetitions", {})
    return outputs, {
        "frames": summary.get("frames"), "fps": summary.get("fps"), "duration": summary.get("duration"),
        "repetitions": reps.get("count"), "complete_repetitions": reps.get("complete"),
        "signal": reps.get("signal"), "notes": notes,
    }


def _image_keypoints(path: Path) -> int:
    """How many keypoints of the photo's pose scored at least 0.3 (shown on the result page)."""
    from efficientpose.io.predictions import read_image_predictions

    keypoints = read_image_predictions(path)[0].pose.keypoints
    return int((keypoints[:, 2] >= 0.3).sum())
