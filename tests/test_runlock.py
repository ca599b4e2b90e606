"""One `rnn train` per run folder: an exclusive lock that the kernel releases when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rnncli.cli import main
from rnncli.config import load_config
from rnncli.errors import CheckpointError
from rnncli.runstore import RunStore
from rnncli.training import run_training

from .conftest import write_config


def _contents(folder):
    return sorted((p.relative_to(folder), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.slow  # a subprocess
def test_a_second_run_into_a_held_folder_fails_at_once_naming_the_holder(workdir):
    cfg = load_config(write_config(workdir, train={"epochs": 1}))
    run_training(cfg)
    before = _contents(workdir / "run")
    with RunStore(workdir / "run").lock():  # as a first `rnn train` holds it for its whole run
        result = CliRunner().invoke(main, ["train", str(workdir / "run.yaml"), "--resume", "-q"])
        with pytest.raises(CheckpointError) as info:
            run_training(cfg, overwrite=True)
    assert result.exit_code == 2 and info.value.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"rnn: error: {workdir / 'run'} is in use by another rnn train (process {os.getpid()})")
    assert _contents(workdir / "run") == before  # neither run touched it


@pytest.mark.slow  # a subprocess
def test_a_killed_holder_leaves_no_stale_lock(workdir):
    cfg = load_config(write_config(workdir, train={"epochs": 1}))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from rnncli.runstore import RunStore\n"
         "with RunStore(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(60)", str(workdir / "run")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(CheckpointError, match="in use by another rnn train"):
        run_training(cfg)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert run_training(cfg)["steps"] > 0


def test_a_run_that_never_started_leaves_no_folder(workdir):
    path = write_config(workdir, data={"train": "nowhere.txt"}, checkpoint={"dir": str(workdir / "fresh")})
    result = CliRunner().invoke(main, ["train", str(path), "-q"])
    assert result.exit_code == 2
    assert not (workdir / "fresh").exists()
