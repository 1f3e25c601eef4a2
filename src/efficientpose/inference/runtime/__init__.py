"""Inference backends: runners, the export cache, the backend choice and export itself."""
