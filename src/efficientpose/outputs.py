"""The documented prediction-file API (README "Output format"): a stable name for :mod:`efficientpose.io.predictions`,
which holds the writers and the one reader of ``predict``'s JSON and CSV files."""

from __future__ import annotations

from efficientpose.io.predictions import (
    IMAGE_CSV_NAME,
    IMAGE_JSON_NAME,
    ImagePrediction,
    ImagePredictionsWriter,
    VideoPredictions,
    VideoPredictionsWriter,
    image_csv_header,
    keypoint_columns,
    read_image_predictions,
    read_predictions,
    read_video_predictions,
    video_csv_header,
    write_image_predictions,
)

__all__ = [
    "IMAGE_CSV_NAME",
    "IMAGE_JSON_NAME",
    "ImagePrediction",
    "ImagePredictionsWriter",
    "VideoPredictions",
    "VideoPredictionsWriter",
    "image_csv_header",
    "keypoint_columns",
    "read_image_predictions",
    "read_predictions",
    "read_video_predictions",
    "video_csv_header",
    "write_image_predictions",
]
