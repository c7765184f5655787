"""Training: the config (config), the loop (trainer), ranks (distributed), optimiser and schedule (optim),
checkpoints, logging."""
from .config import ConfigError, TrainingConfig, load_config
from .trainer import TrainingDiverged, TrainingInterrupted, WorkDirInUse, train, train_step

__all__ = ["ConfigError", "TrainingConfig", "TrainingDiverged", "TrainingInterrupted", "WorkDirInUse", "load_config",
           "train", "train_step"]  # fmt: skip
