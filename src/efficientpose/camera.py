"""Live webcam pose estimation: a window with the skeleton where a display exists; q or Ctrl-C stops.

Frames are also written to ``<output>/camera<N>.json`` (and/or ``.csv``, as ``--format`` says) in the video output
format.
"""

from __future__ import annotations

import contextlib
import os
import sys

import cv2

from efficientpose.inference.estimator import PoseEstimator
from efficientpose.inference.tracking import PersonTracker
from efficientpose.inference.tracks import MAX_PEOPLE
from efficientpose.io.draw import draw_pose
from efficientpose.io.predictions import VideoPredictionsWriter
from efficientpose.io.video import open_camera
from efficientpose.predict import PredictOptions, open_detector, video_finder


def _can_show() -> bool:
    """A window needs a display and an OpenCV build with GUI support (not opencv-python-headless)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("efficientpose")
        return True
    except cv2.error:
        return False


def run_camera(index: int, estimator: PoseEstimator, options: PredictOptions) -> int:
    """Track webcam ``index`` until q, Ctrl-C or the stream ends; returns the exit code."""
    reader = open_camera(index)
    with contextlib.ExitStack() as cleanup:  # the camera is released whatever fails, setup included
        cleanup.callback(reader.close)
        show = _can_show()
        if show:
            cleanup.callback(cv2.destroyAllWindows)
        else:
            print("no display (or a headless OpenCV build): writing predictions only; Ctrl-C stops", file=sys.stderr)
        options.output.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = options.output_paths(f"camera{index}")
        writer = VideoPredictionsWriter(json_path, csv_path, file=f"camera:{index}", width=reader.width,
                                        height=reader.height, fps=reader.fps, model=estimator.variant.name,
                                        names=estimator.names, detection=options.detection)
        cleanup.callback(writer.close)  # also on an error (e.g. the camera unplugged): keeps the frames so far
        try:
            finder = None  # with the person detector: everyone is followed, the pose is the subject's (forward only)
            if options.detection:
                detector = open_detector(options.detector, backend=estimator.backend)
                limit = min(options.people or MAX_PEOPLE, MAX_PEOPLE)
                finder = video_finder(estimator, detector, options.threshold, limit)
            tracker = PersonTracker(estimator, roi=options.roi, smooth=options.smoothing if options.smooth else None,
                                    threshold=options.threshold, finder=finder)
            for frame in reader:
                pose = tracker(frame.image, frame.time)
                writer.add(frame.index, frame.time, pose)
                if show:
                    shown = draw_pose(frame.image, pose, threshold=options.threshold)
                    cv2.imshow("efficientpose", cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
        except KeyboardInterrupt:
            pass
    return 0
