"""The run store: the one place that reads and writes a training run's folder.

A run folder holds ``index.json``, ``metrics.jsonl`` and the checkpoints (see
``checkpoint``), and the folder `rnn train` ran in keeps a pointer to the last
run (``.rnn/last_run``).  In data-parallel training only rank 0 has a store.
"""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import (
    Checkpoint,
    append_metrics,
    load_checkpoint,
    read_index,
    remember_last_run,
    save_checkpoint,
    truncate_metrics,
    unique_name,
)
from .errors import CheckpointError


class RunStore:
    def __init__(self, run_dir: Path, keep: int = 1, keep_best: bool = True):
        self.dir = Path(run_dir)
        self.keep, self.keep_best = keep, keep_best

    def index(self) -> dict:
        return read_index(self.dir) if self.dir.exists() else {}

    def has_run(self) -> bool:
        return bool(self.index().get("last"))

    def load_last(self) -> Checkpoint:
        return load_checkpoint(self.dir, which="last", with_trainer=True)

    def check_writable(self) -> None:
        """Fail before hours of training, not after, when the folder cannot be written."""
        probe = self.dir / f".probe-{os.getpid()}"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise CheckpointError(f"checkpoint.dir: cannot write in {self.dir} ({e.strerror or e})") from None

    def start_fresh(self) -> None:
        """A new run over an old one: the old index and records go (its checkpoints are pruned by the first save)."""
        (self.dir / "index.json").unlink(missing_ok=True)
        truncate_metrics(self.dir, 0)

    def sync_metrics(self, lines: int | None) -> int:
        """Keep the records a resumed checkpoint accounts for; returns how many there are."""
        if lines is not None:
            truncate_metrics(self.dir, lines)
            return lines
        metrics = self.dir / "metrics.jsonl"  # a checkpoint from before the count was kept: trust the file
        return len(metrics.read_bytes().splitlines()) if metrics.exists() else 0

    def append_metrics(self, record: dict) -> None:
        append_metrics(self.dir, record)

    def name_for(self, epoch: int, step: int) -> str:
        return unique_name(self.dir, f"ckpt-e{epoch:04d}-s{step:08d}")

    def save(self, name: str, weights: dict, trainer: dict, vocab: dict, meta: dict, is_best: bool) -> Path:
        path = save_checkpoint(
            self.dir, name, weights, trainer, vocab, meta, is_best=is_best, keep=self.keep, keep_best=self.keep_best
        )
        remember_last_run(self.dir)
        return path

    def best_or_dir(self) -> Path:
        index = read_index(self.dir)
        return (self.dir / index["best"]) if index.get("best") else self.dir
