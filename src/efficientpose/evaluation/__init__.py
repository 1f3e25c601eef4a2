"""Scoring predictions against datasets (PCK, PCKh), running models over dataset samples, and the paper table."""
