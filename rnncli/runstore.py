"""The run store: the one place that reads and writes a training run's folder.

A run folder holds ``index.json``, ``metrics.jsonl`` and the checkpoints (see
``checkpoint``).  The pointer to the last run (``.rnn/last_run``, in the folder `rnn train` ran
in) is the CLI's: a store writes nothing outside its folder.  In data-parallel training only rank
0 has a store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .checkpoint import (
    Checkpoint,
    append_metrics,
    intact_alternative,
    load_checkpoint,
    read_index,
    save_checkpoint,
    truncate_metrics,
    unique_name,
)
from .errors import CheckpointError

try:
    import fcntl
except ImportError:  # not on POSIX: no locking
    fcntl = None

LOCK_FILE = ".lock"


def _lock_holder(fd: int) -> str:
    """Who holds the flock on fd's file: "process N" from Linux's /proc/locks, else a generic phrase.

    Read from the kernel rather than written into the file, so that taking the lock never modifies
    the run folder."""
    st = os.fstat(fd)
    key = f":{st.st_ino} "
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if (
                    "FLOCK" in fields
                    and key in line
                    and f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:" in line
                ):
                    return f"process {fields[4]}"
    except OSError:
        pass
    return "another process"


def _remove_empty_run(run_dir: Path) -> None:
    """Remove a run folder (that this run created) in which no checkpoint was ever saved: it holds
    only the lock, metrics records that no checkpoint backs (a first save failed, say on a full
    disk) and the temporary folder of that save, so nothing in it could be resumed or used."""
    leftovers = {p.name for p in run_dir.iterdir()} - {LOCK_FILE, "metrics.jsonl"}
    if all(name.startswith((".tmp-", ".probe-")) for name in leftovers):
        shutil.rmtree(run_dir, ignore_errors=True)


class RunStore:
    def __init__(self, run_dir: Path, keep: int = 1, keep_best: bool = True):
        self.dir = Path(run_dir)
        self.keep, self.keep_best = keep, keep_best

    def index(self) -> dict:
        return read_index(self.dir) if self.dir.exists() else {}

    def has_run(self) -> bool:
        return bool(self.index().get("last"))

    def load_for_resume(self, which: str = "last") -> Checkpoint:
        """The checkpoint to resume from: ``last`` (normally), ``best``, or a ckpt-* folder of the run.

        A damaged one is refused, naming its file and an intact checkpoint to resume from instead.
        """
        try:
            if which in ("last", "best"):
                return load_checkpoint(self.dir, which=which, with_trainer=True, suggest=False)
            if not (self.dir / which / "checkpoint.json").exists():
                raise CheckpointError(f"--from {which}: no such checkpoint in {self.dir}", 2)
            return load_checkpoint(self.dir / which, with_trainer=True)
        except CheckpointError as e:
            if e.exit_code != 1:
                raise
            broken = which if which not in ("last", "best") else read_index(self.dir).get(which)
            other = intact_alternative(self.dir, broken, with_trainer=True)
            if other is None:
                raise
            how = "--from best" if other == read_index(self.dir).get("best") else f"--from {other}"
            raise CheckpointError(f"{e}; {other} is intact: resume from it with --resume {how}") from None

    @contextlib.contextmanager
    def lock(self):
        """Hold the run folder for one `rnn train`: an exclusive flock on ``.lock`` in it.

        The kernel releases the lock when the process ends, however it ends (SIGKILL included),
        so a lock is never stale.  A second run into the same folder is refused at once (exit 2),
        naming the process that holds it.  A folder this call created is removed again when the
        run saved nothing in it.
        """
        created = not self.dir.exists()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CheckpointError(f"checkpoint.dir: cannot write in {self.dir} ({e.strerror or e})") from None
        try:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise CheckpointError(
                    f"{self.dir} is in use by another rnn train ({_lock_holder(fd)}); wait for it to finish, "
                    "or set checkpoint.dir to another folder",
                    2,
                ) from None
            try:
                yield self
            finally:
                if created and not (self.dir / "index.json").exists():
                    _remove_empty_run(self.dir)
        finally:
            os.close(fd)

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

    def last_valid_loss(self) -> float | None:
        """The validation loss of the newest record that has one (None when there is none)."""
        metrics = self.dir / "metrics.jsonl"
        lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.exists() else []
        for line in reversed(lines):
            try:
                loss = json.loads(line).get("valid_loss")
            except (ValueError, AttributeError):
                continue
            if isinstance(loss, int | float):
                return float(loss)
        return None

    def append_metrics(self, record: dict) -> None:
        append_metrics(self.dir, record)

    def name_for(self, epoch: int, step: int) -> str:
        return unique_name(self.dir, f"ckpt-e{epoch:04d}-s{step:08d}")

    def save(
        self,
        name: str,
        weights: dict,
        trainer: dict,
        vocab: dict,
        meta: dict,
        is_best: bool,
        pieces: bytes | None = None,
    ) -> Path:
        path = save_checkpoint(
            self.dir,
            name,
            weights,
            trainer,
            vocab,
            meta,
            is_best=is_best,
            keep=self.keep,
            keep_best=self.keep_best,
            pieces=pieces,
        )
        return path

    def best_or_dir(self) -> Path:
        index = read_index(self.dir)
        return (self.dir / index["best"]) if index.get("best") else self.dir
