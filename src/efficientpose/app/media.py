"""The app's browser copy of an annotated video: H.264 in MP4 (yuv420p, moov first), which Chromium plays.

``predict --draw`` writes MPEG-4 Part 2 (OpenCV's mp4v), which browsers do not play; the app re-encodes that
file through PyAV rather than changing predict's documented output.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from efficientpose.io.atomic import atomic_path


def browser_video(source: Path, target: Path, fps: float) -> Path:
    """Re-encode ``source`` as H.264 into ``target`` (atomically) at ``fps``; returns ``target``."""
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(source)) as src, atomic_path(target) as temp:
        decoded = src.streams.video[0]
        width, height = decoded.width - decoded.width % 2, decoded.height - decoded.height % 2
        with av.open(str(temp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for i, frame in enumerate(src.decode(decoded)):
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = i, 1 / rate
                out.mux(stream.encode(picture))
            out.mux(stream.encode(None))
    return target
