"""Oracles and baselines: the authors' own pipeline and the OpenPose network. Never on the product path."""
