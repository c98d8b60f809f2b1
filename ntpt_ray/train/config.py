"""The settings of gradient search, apart from the trainer so that reading them loads no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of gradient search (one restart's budget is ``steps x batch_size``)."""

    steps: int = 600
    batch_size: int = 16
    lr: float = 0.1  # Adam, Param logits
    library_lr: float | None = None  # Adam, neural library; default lr / 100 (paper, Sec. 6.1)
    init_scale: float = 1.0  # std of the initial Param logits
    entropy_start: float = -0.05  # weight of the Params' entropy in the loss, moved linearly
    entropy_end: float = 0.05  # from start to end over training (negative rewards entropy)
    val_every: int = 25
    val_size: int = 100  # validation examples per length
    test_size: int = 100  # test examples per test length
    beam: int = 1024  # candidate programs decoded per restart
    frozen_nets: tuple[str, ...] = ()  # library nets used as they are, never trained

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_every", "val_size", "test_size", "beam"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "init_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.library_lr is not None and not self.library_lr > 0:
            raise ValueError(f"TrainConfig.library_lr must be > 0, got {self.library_lr}")

    @property
    def effective_library_lr(self) -> float:
        return self.lr / 100 if self.library_lr is None else self.library_lr
