"""Training: the loop (trainer), ranks (distributed), optimiser and schedule (optim), checkpoints, logging."""
from .trainer import TrainingDiverged, load_config, train, train_step

__all__ = ["TrainingDiverged", "load_config", "train", "train_step"]
