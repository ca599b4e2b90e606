"""Shared fixtures: a tiny corpus and config in a temporary folder, run in-process.

The suite never writes into the folder it is started from (a user's `.rnn/last_run` there names
their own model): every fixture and test works in a temporary folder of its own, and
`pytest_sessionfinish` below fails the run if anything in the starting folder was created,
changed or removed.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

# hypothesis keeps its example database and caches in ./.hypothesis unless told otherwise
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "rnn-tests-hypothesis"))
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("rnn", database=None)
    _hypothesis_settings.load_profile("rnn")
except ImportError:  # pragma: no cover (the test extra installs it)
    pass

TINY_TEXT = """\
O menino acordou sentindo-se indisposto e ficou em casa.
A mãe trouxe um copo d'água e um chá quente.
Às 14h30 ele já estava sentindo-se melhor.
O médico disse que não era nada grave.
Ela saiu cedo para o trabalho e voltou tarde.
Choveu muito na cidade durante a tarde.
"""


def write_config(folder: Path, **sections) -> Path:
    """A small, fast config in folder/run.yaml; keyword arguments update sections."""
    cfg = {
        "data": {"train": "train.txt", "valid_fraction": 0.2},
        "tokenizer": {"mode": "portuguese"},
        "model": {"cell": "rnn", "embedding_size": 8, "hidden_size": 12},
        "train": {
            "batch_size": 2,
            "bptt": 5,
            "epochs": 2,
            "optimizer": "adam",
            "lr": 0.01,
            "seed": 7,
            "eval_batch_size": 1,
        },
        "checkpoint": {"dir": str(folder / "run")},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary current folder holding train.txt (the tiny corpus, repeated)."""
    (tmp_path / "train.txt").write_text(TINY_TEXT * 8, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RNN_CHECKPOINT", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder of the tiny model, trained once per session, for the tests that only read it.

    Tests must not write into it (no resume, no edits): those train their own in `workdir`.
    """
    from rnncli.config import load_config
    from rnncli.training import run_training

    folder = tmp_path_factory.mktemp("tiny-run")
    (folder / "train.txt").write_text(TINY_TEXT * 8, encoding="utf-8")
    (folder / "test.txt").write_text(TINY_TEXT, encoding="utf-8")
    with working_in(folder):  # the run's .rnn/ (last-run pointer, corpus cache) goes there
        run_training(load_config(write_config(folder)))
    return folder / "run"


@contextmanager
def working_in(folder: Path):
    """Run a block with folder as the current directory (for fixtures wider than a test, which
    monkeypatch.chdir cannot serve)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


@pytest.fixture
def runner():
    """Runs `rnn` in-process; stdout and stderr are kept apart."""
    return CliRunner()


# ------------------------------------------------------- the starting folder stays as it was
_IGNORED = {".git", "__pycache__", ".pytest_cache"}  # git's and Python's/pytest's own caches


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below folder (path -> size, modification time), caches left out."""
    state = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _IGNORED]
        for name in dirs + files:
            path = Path(root, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            state[str(path.relative_to(folder))] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return state


def changed_paths(before: dict, after: dict) -> list[str]:
    created = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    modified = sorted(p for p in set(before) & set(after) if before[p] != after[p] and p not in _folders(after))
    return [f"created {p}" for p in created] + [f"removed {p}" for p in removed] + [f"changed {p}" for p in modified]


def _folders(state: dict) -> set[str]:
    # a folder's own time changes whenever an entry is added or removed in it: report the entry instead
    return {str(Path(p).parent) for p in state}


def pytest_sessionstart(session):
    session.config._rnn_start = (Path.cwd(), folder_state(Path.cwd()))


def pytest_sessionfinish(session, exitstatus):
    start = getattr(session.config, "_rnn_start", None)
    if start is None:
        return
    folder, before = start
    changes = changed_paths(before, folder_state(folder))
    if changes:
        shown = "\n  ".join(changes[:20])
        session.config.get_terminal_writer().line(
            f"\nthe test suite wrote into the folder it was started from ({folder}):\n  {shown}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
