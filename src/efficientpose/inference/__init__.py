"""Running a model on images: the estimator, tracking and smoothing for video, and the runtime backends."""
