"""Training: configs, on-device augmentation, the engine (stages, checkpoints, exact resume)."""
