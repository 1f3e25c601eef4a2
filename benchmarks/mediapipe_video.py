"""MediaPipe Pose on a video, written to JSON: the reference side of `benchmarks/video_people.py` (issue 13).

Runs in its own virtual environment, never in the project's (MediaPipe is not a dependency of efficientpose):

    python -m venv /root/ep-state/mp-venv && /root/ep-state/mp-venv/bin/pip install mediapipe==0.10.21
    /root/ep-state/mp-venv/bin/python benchmarks/mediapipe_video.py CLIP OUT.json

MediaPipe Pose 0.10.21 (the legacy `solutions.pose` graph: BlazePose detector + full landmark model) in video
mode (`static_image_mode=False`), `model_complexity=1`, default smoothing and confidences. OpenCV decodes; one
JSON object per clip, one frame per line with its 33 landmarks as [x, y, visibility], x and y in pixels of the
decoded frame (MediaPipe's normalised coordinates times width and height), or null when nobody is tracked.
This process does what a user's script would: decode, detect and track, landmarks, JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import mediapipe as mp


def main() -> None:
    clip, out = Path(sys.argv[1]), Path(sys.argv[2])
    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        sys.exit(f"{clip}: cannot open")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    lines, start = [], time.perf_counter()
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        index = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            result = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            marks = None
            if result.pose_landmarks is not None:
                h, w = bgr.shape[:2]
                marks = [[round(p.x * w, 2), round(p.y * h, 2), round(p.visibility, 4)]
                         for p in result.pose_landmarks.landmark]
            lines.append(json.dumps({"frame": index, "landmarks": marks}))
            index += 1
    head = {"file": str(clip), "width": width, "height": height, "fps": fps, "model": "mediapipe-pose-0.10.21-full",
            "seconds": round(time.perf_counter() - start, 3)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(head)[:-1] + ', "frames": [\n' + ",\n".join(lines) + "\n]}\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
