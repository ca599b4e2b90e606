"""Real training processes stopped by signals: SIGINT/SIGTERM save and exit 130/143, and SIGKILL
at random moments (many of them in the middle of a checkpoint write) never loses a checkpoint.

These start `python -m rnncli train` as a child process and read its stderr; the whole file takes
well under two minutes.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rnncli.checkpoint import load_checkpoint, read_index
from rnncli.config import load_config
from rnncli.training import run_training

from .conftest import write_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]  # subprocesses


def _start(cfg, resume: bool, pause: str = "0.003") -> subprocess.Popen:
    env = dict(os.environ, RNN_TEST_CHECKPOINT_PAUSE=pause, PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "rnncli", "train", str(cfg)] + (["--resume"] if resume else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def _wait_until_training(proc: subprocess.Popen) -> None:
    """Training starts right after the `corpus:` line."""
    for line in proc.stderr:
        if line.startswith("corpus:"):
            return
    raise AssertionError(f"the process ended before training (exit {proc.wait()})")


def _weights(run_dir):
    return load_checkpoint(run_dir, "last").weights


def _uninterrupted(workdir, **sections):
    sections = dict(sections, checkpoint={**sections.get("checkpoint", {}), "dir": str(workdir / "reference")})
    cfg = write_config(workdir, **sections)
    run_training(load_config(cfg))
    return _weights(workdir / "reference")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_exits_128_plus_signum_and_resume_is_bitwise_equal(workdir, signum, code):
    sections = {"train": {"epochs": 3}, "model": {"dropout": 0.2}}
    expected = _uninterrupted(workdir, **sections)
    # a save after every step, slowed down, keeps the child busy for seconds
    cfg = write_config(workdir, checkpoint={"every_steps": 1}, **sections)
    proc = _start(cfg, resume=False, pause="0.01")
    _wait_until_training(proc)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"rnn: interrupted: {signal.Signals(signum).name} received: saved ")
    assert "--resume" in line and "Traceback" not in err
    stopped_at = read_index(workdir / "run")["last"]

    resumed = subprocess.run(
        [sys.executable, "-m", "rnncli", "train", str(cfg), "--resume", "-q"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    got = _weights(workdir / "run")
    for key in expected:  # bitwise: same operations in the same order on the same numbers
        np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{key} (stopped at {stopped_at})")
    epochs = [json.loads(x)["epoch"] for x in (workdir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_sigkill_at_random_moments_never_loses_a_checkpoint(workdir):
    """At least 20 SIGKILLs, many inside a checkpoint write; each time the last checkpoint loads and
    the run resumes from it; the final weights equal those of an uninterrupted run, bit for bit."""
    # ten windows an epoch, so that the kills also land around epoch ends (validation, metrics, best);
    # enough epochs that 24 kills, each a few steps apart, come before the end even on a fast machine
    epochs = 25
    sections = {
        "train": {"epochs": epochs, "bptt": 20},
        "model": {"dropout": 0.1},
        "checkpoint": {"every_steps": 1, "keep": 2},
    }
    expected = _uninterrupted(workdir, **dict(sections, checkpoint={"every_steps": 0}))
    cfg = write_config(workdir, **sections)
    run_dir = workdir / "run"
    chance = random.Random(20261126)
    kills = during_write = 0
    resumed_from: list[int] = []
    while kills < 24:
        has_last = bool((run_dir / "index.json").exists() and read_index(run_dir).get("last"))
        proc = _start(cfg, resume=has_last)
        _wait_until_training(proc)
        time.sleep(chance.uniform(0.0, 0.25))
        if proc.poll() is not None:
            proc.communicate()
            break  # finished before the kill
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        kills += 1
        index = read_index(run_dir)
        names = {p.name for p in run_dir.iterdir()}
        # killed inside a save: a temporary folder, or a finished folder that index.json does not name yet
        orphans = {n for n in names if n.startswith("ckpt-")} - set(index.get("recent", [])) - {index.get("best")}
        if any(n.startswith(".tmp-") for n in names) or orphans:
            during_write += 1
        if index.get("last"):
            ckpt = load_checkpoint(run_dir, "last", with_trainer=True)  # verifies every checksum
            load_checkpoint(run_dir, "best")
            resumed_from.append(ckpt.meta["progress"]["step"])
    finish = _start(cfg, resume=True, pause="0")
    _, err = finish.communicate(timeout=120)
    assert finish.returncode == 0, err

    print(f"\nSIGKILL test: {kills} kills, {during_write} during a checkpoint write, resumed from steps {resumed_from}")
    assert kills >= 20, f"training finished after only {kills} kills"
    assert during_write >= 3, f"only {during_write} of {kills} kills landed in a checkpoint write"
    assert resumed_from == sorted(resumed_from), "a resume went back behind an earlier checkpoint"
    got = _weights(run_dir)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    logged = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, epochs + 1))
