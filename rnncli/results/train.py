"""The result of `rnn train`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainResult:
    """The summary of a training run, the fields of `rnn train --format json`."""

    checkpoint: str
    run_dir: str
    epochs: int
    epochs_completed: int
    partial_epoch: float
    steps: int
    tokens: int
    train_seconds: float
    tokens_per_sec: float | None
    session_tokens: int
    session_seconds: float
    valid_loss: float | None
    valid_ppl: float | None
    best_valid_loss: float | None
    best_valid_ppl: float | None
    lr: float
    vocab_size: int
    params: int
