"""Everything training, evaluation and inference must agree on: input geometry, normalisation, heatmap
encoding and decoding (numpy only)."""
