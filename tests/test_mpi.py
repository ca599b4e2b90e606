"""Data-parallel training under MPI: `mpirun -n K rnn train` against one process.

Each test launches real MPI jobs (the `mpi` extra: mpi4py and Open MPI or MPICH) and
skips when mpi4py or mpirun is missing.  Root and more workers than cores are allowed
through the launcher's environment, as the README says.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnncli.checkpoint import load_checkpoint, read_index
from rnncli.comm import launched_by_mpi
from rnncli.config import load_config
from rnncli.training import run_training

from .conftest import TINY_TEXT, write_config

MPIRUN = shutil.which("mpirun") or shutil.which("mpiexec")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        MPIRUN is None or importlib.util.find_spec("mpi4py") is None, reason="needs mpi4py and mpirun (the mpi extra)"
    ),
]

# dropout on, an LSTM, 150 steps: long enough for rounding differences to show if the reduction were wrong
SECTIONS = {
    "model": {"cell": "lstm", "embedding_size": 8, "hidden_size": 12, "dropout": 0.3},
    "train": {"batch_size": 6, "bptt": 5, "epochs": 2, "optimizer": "sgd", "lr": 2.0, "eval_batch_size": 3},
}


def _env() -> dict:
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",  # Open MPI 5: more workers than cores
        OMPI_MCA_rmaps_base_oversubscribe="1",  # Open MPI 4
        PYTHONUNBUFFERED="1",
    )
    return env


def _mpirun(k: int, *args: str) -> list[str]:
    return [MPIRUN, "-n", str(k), sys.executable, "-m", "rnncli", "train", *args]


def _run(k: int, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(_mpirun(k, *args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def corpus(workdir):
    (workdir / "train.txt").write_text(TINY_TEXT * 40, encoding="utf-8")
    return workdir


def _config(folder: Path, run: str, **extra) -> Path:
    sections = {k: dict(v) for k, v in SECTIONS.items()}
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    sections["checkpoint"] = {**sections.get("checkpoint", {}), "dir": run}
    path = write_config(folder, **sections)
    return path.rename(folder / f"{run}.yaml")


def _reference(folder: Path, **extra) -> Path:
    """The same config trained by one process, in this process."""
    run_training(load_config(_config(folder, "reference", **extra)))
    return folder / "reference"


def _relative_gap(a: dict, b: dict) -> dict[str, float]:
    return {k: float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(a[k]), 1e-30)) for k in a}


def _assert_same_run(run: Path, reference: Path, rtol: float = 1e-5) -> None:
    a, b = load_checkpoint(reference, "last").weights, load_checkpoint(run, "last").weights
    assert sorted(a) == sorted(b)
    gaps = _relative_gap(a, b)
    worst = max(gaps, key=gaps.get)
    assert gaps[worst] < rtol, f"{worst} differs by {gaps[worst]:.3g} (relative)"
    ra = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for x, y in zip(ra, rb):
        for key in ("train_loss", "valid_loss"):
            assert y[key] == pytest.approx(x[key], rel=rtol), (x["epoch"], key)


def test_launch_detection_reads_the_launchers_environment():
    assert not launched_by_mpi({})
    assert not launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "1"})
    assert launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"})
    assert launched_by_mpi({"PMI_SIZE": "4"})
    assert launched_by_mpi({"PMIX_RANK": "0"})


def test_plain_train_does_not_import_mpi4py(corpus):
    code = (
        "import sys; from rnncli.cli import main; sys.argv=['rnn','train','run.yaml','-q'];\n"
        "try: main()\nexcept SystemExit: pass\nprint('mpi4py' in sys.modules)"
    )
    write_config(corpus, train={"epochs": 1})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=corpus, env=env, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


@pytest.mark.parametrize(
    "k, batch, bptt",
    [
        (2, 6, 5),
        (3, 6, 5),
        (3, 3, 5),
        (3, 6, 40),  # windows that hold most of the vocabulary: the embedding is reduced densely
    ],
)
def test_k_workers_train_the_model_one_process_trains(corpus, k, batch, bptt):
    extra = {"train": {"batch_size": batch, "bptt": bptt}}
    reference = _reference(corpus, **extra)
    out = _run(k, str(_config(corpus, "parallel", **extra)), "--format", "json", cwd=corpus)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # one summary, printed by rank 0 alone
    assert summary["steps"] >= (100 if bptt == 5 else 10)
    _assert_same_run(corpus / "parallel", reference)


def test_only_rank_0_reads_the_corpus_and_writes(corpus):
    """Rank 1 runs in an empty folder with a config whose corpus does not exist there."""
    for r in (0, 1):
        (corpus / f"r{r}").mkdir()
        cfg = _config(corpus, "run", data={"cache_dir": "cache"})
        shutil.move(cfg, corpus / f"r{r}" / "cfg.yaml")
    shutil.move(corpus / "train.txt", corpus / "r0" / "train.txt")
    rank = "${OMPI_COMM_WORLD_RANK:-$PMI_RANK}"
    script = f'cd "r{rank}" && exec "{sys.executable}" -m rnncli train cfg.yaml -q'
    out = subprocess.run(
        [MPIRUN, "-n", "2", "sh", "-c", script], cwd=corpus, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (corpus / "r1").iterdir()) == ["cfg.yaml"]  # rank 1 wrote nothing at all
    assert read_index(corpus / "r0" / "run")["last"]
    assert len(list((corpus / "r0" / "cache").iterdir())) >= 1
    assert (corpus / "r0" / ".rnn" / "last_run").exists()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _settled(run: Path) -> dict:
    """The run folder's index once no save is in flight (a signal's save finishes in a detached writer)."""

    def quiet():
        busy = any(p.name.startswith(".tmp-") for p in run.iterdir())
        return None if busy else read_index(run)

    _wait_for(quiet, 30, "the save to finish")
    time.sleep(0.5)
    return _wait_for(quiet, 30, "the save to finish")


# long enough to be interrupted after its first epoch; no plateau decay, whose decision a last-digit
# difference of the validation loss could flip (the equality is up to rounding, not bitwise)
LONG = {"train": {"epochs": 6, "lr_decay": 1.0}, "model": {"embedding_size": 32, "hidden_size": 48}}


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_sigterm_mid_epoch_then_resume_with_another_worker_count(corpus, first, then):
    (corpus / "train.txt").write_text(TINY_TEXT * 160, encoding="utf-8")  # epochs of windows, mostly
    reference = _reference(corpus, **LONG)
    cfg = str(_config(corpus, "run", **LONG))
    job = subprocess.Popen(
        _mpirun(first, cfg), cwd=corpus, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: (corpus / "run" / "metrics.jsonl").exists(), 120, "the first epoch")
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=60)
    assert job.returncode != 0
    _settled(corpus / "run")
    saved = load_checkpoint(corpus / "run", "last", with_trainer=True).meta["progress"]
    total = load_checkpoint(reference, "last").meta["progress"]["tokens"]
    # stopped early, saved on the signal: in the middle of an epoch (the usual case, the windows
    # take most of an epoch's time) or at an epoch's end when the signal came during validation
    assert 0 < saved["tokens"] < total
    out = _run(then, cfg, "--resume", cwd=corpus)
    assert out.returncode == 0, out.stderr
    _assert_same_run(corpus / "run", reference)


def _pids_of_rank(marker: str, rank: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmdline and b"rnncli" in cmdline:
            ranks = [e for e in environ if e.startswith((b"OMPI_COMM_WORLD_RANK=", b"PMI_RANK="))]
            if ranks and ranks[0].split(b"=", 1)[1] == str(rank).encode():
                found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc")
def test_a_killed_worker_ends_the_job_and_resume_finishes(corpus):
    extra = {"train": {"epochs": 4, "lr_decay": 1.0}, "checkpoint": {"every_steps": 25}}
    reference = _reference(corpus, **extra)
    cfg = _config(corpus, "killed", **extra)
    job = subprocess.Popen(
        _mpirun(2, str(cfg)), cwd=corpus, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(
        lambda: read_index(corpus / "killed").get("last") if (corpus / "killed").exists() else None, 120, "a save"
    )
    [pid] = _wait_for(lambda: _pids_of_rank(str(cfg), 1), 30, "rank 1")
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    job.communicate(timeout=60)  # no hang: the launcher ends the whole job
    assert job.returncode != 0
    assert time.monotonic() - start < 30
    _settled(corpus / "killed")
    load_checkpoint(corpus / "killed", "last", with_trainer=True)  # every checksum verified
    out = _run(2, str(cfg), "--resume", cwd=corpus)
    assert out.returncode == 0, out.stderr
    _assert_same_run(corpus / "killed", reference)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["--set", "train.batch_size=5"], "5 streams cannot be shared equally by 2 workers"),
        (["--set", "data.train=missing.txt"], "missing.txt"),
    ],
)
def test_config_errors_are_one_line_and_exit_2_on_every_worker(corpus, overrides, needle):
    train = " ".join([f'"{sys.executable}"', "-m", "rnncli", "train", str(_config(corpus, "run")), *overrides])
    script = f'{train}; echo "worker exit $?" >&2'
    out = subprocess.run(
        [MPIRUN, "-n", "2", "sh", "-c", script], cwd=corpus, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert out.stderr.count("worker exit 2") == 2, out.stderr
    ours = [line for line in out.stderr.splitlines() if line.startswith("rnn:")]
    assert len(ours) == 1 and ours[0].startswith("rnn: error:") and needle in ours[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (corpus / "run").exists() or not read_index(corpus / "run")


def test_workers_with_different_weights_are_stopped_by_the_checksum(tmp_path):
    code = (
        "import numpy as np\n"
        "from rnncli.comm import communicator, WorkerDisagreement\n"
        "c = communicator()\n"
        "p = {'w': np.ones(3, np.float32), 'b': np.zeros(2, np.float32)}\n"
        "c.check_same(p, 'before')\n"
        "if c.rank == 1:\n"
        "    p['w'][0] = np.nextafter(np.float32(1), np.float32(2))  # one bit of one weight\n"
        "try:\n"
        "    c.check_same(p, 'after step 5')\n"
        "    print('no error', flush=True)\n"
        "except WorkerDisagreement as e:\n"
        "    print(f'rank {c.rank}: {e}', flush=True)\n"
    )
    out = subprocess.run(
        [MPIRUN, "-n", "2", sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = sorted(out.stdout.splitlines())
    assert len(lines) == 2 and all("weights differ after step 5" in line and "ranks [1]" in line for line in lines)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc")
def test_a_signal_to_one_worker_stops_every_worker_and_saves(corpus):
    (corpus / "train.txt").write_text(TINY_TEXT * 160, encoding="utf-8")
    reference = _reference(corpus, **LONG)
    cfg = _config(corpus, "run", **LONG)
    job = subprocess.Popen(
        _mpirun(2, str(cfg)), cwd=corpus, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: (corpus / "run" / "metrics.jsonl").exists(), 120, "the first epoch")
    [pid] = _wait_for(lambda: _pids_of_rank(str(cfg), 1), 30, "rank 1")
    os.kill(pid, signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM  # the workers' own exit status, passed on by mpirun
    # rank 0 was not signalled itself: it hears of the signal from the agreement and says so, once
    assert err.count("SIGTERM received: saving a checkpoint") == 1, err
    assert f"continue with: mpirun -n 2 rnn train {cfg} --resume" in err, err
    _settled(corpus / "run")
    saved = load_checkpoint(corpus / "run", "last", with_trainer=True).meta["progress"]
    assert 0 < saved["tokens"] < load_checkpoint(reference, "last").meta["progress"]["tokens"]
    out = _run(2, str(cfg), "--resume", cwd=corpus)
    assert out.returncode == 0, out.stderr
    _assert_same_run(corpus / "run", reference)


def _on_a_terminal(argv: list[str], cwd: Path, interrupt_when, timeout: float = 120) -> tuple[str, int]:
    """Run argv on a pseudo-terminal, press Ctrl-C once interrupt_when() holds; return what the
    terminal showed and the exit status (what a user at the keyboard sees)."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the job, on the terminal
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, _env())
        finally:
            os._exit(127)
    shown, pressed, deadline = b"", None, time.monotonic() + timeout
    while time.monotonic() < deadline and (pressed is None or time.monotonic() - pressed < 60):
        if pressed is None and interrupt_when():
            os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT to the launcher
            pressed = time.monotonic()
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal closed: every process on it has ended
                break
            if not data:
                break
            shown += data
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return shown.decode("utf-8", "replace"), os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/dev/ptmx").exists(), reason="needs a pseudo-terminal")
def test_ctrl_c_under_mpirun_says_at_once_that_it_saves_and_how_to_resume(corpus):
    """Open MPI stops passing on the workers' output once it is interrupted: rank 0's notice, written
    to the terminal, is what tells the user that a checkpoint is being saved and how to go on."""
    (corpus / "train.txt").write_text(TINY_TEXT * 160, encoding="utf-8")
    cfg = str(_config(corpus, "run", **LONG))
    shown, code = _on_a_terminal(
        _mpirun(2, cfg, "--quiet"), corpus, lambda: (corpus / "run" / "metrics.jsonl").exists()
    )
    assert code != 0
    notices = [line for line in shown.splitlines() if "received: saving a checkpoint" in line]
    assert len(notices) == 1, shown
    assert notices[0].rstrip().endswith(f"continue with: mpirun -n 2 rnn train {cfg} --resume"), shown
    _settled(corpus / "run")
    saved = load_checkpoint(corpus / "run", "last", with_trainer=True).meta["progress"]
    assert saved["tokens"] > 0
    out = _run(2, cfg, "--resume", cwd=corpus)
    assert out.returncode == 0, out.stderr
