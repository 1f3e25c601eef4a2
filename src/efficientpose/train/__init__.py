"""Training and fine-tuning EfficientPose: ``train(config) -> RunResult``; see docs/training.md.

The command line lives in :mod:`efficientpose.train.cli_args` (``efficientpose train`` and
``python -m efficientpose.train.cli_args``).
"""

from efficientpose.train.checkpoints import CheckpointError
from efficientpose.train.config import TrainConfig, load_config, save_config
from efficientpose.train.loop import NonFiniteLossError, RunResult, train

__all__ = ["CheckpointError", "NonFiniteLossError", "RunResult", "TrainConfig", "load_config", "save_config", "train"]
