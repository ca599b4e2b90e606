"""Shared fixtures: a tiny corpus and config in a temporary folder, run in-process.

The suite never writes into the folder it is started from (a user's `.rnn/last_run` there names
their own model): every fixture and test works in a temporary folder of its own, and
`pytest_sessionfinish` below fails the run if anything in the starting folder was created,
changed or removed.
"""

import json
import os
import shutil
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
def trained_once(tmp_path_factory):
    """A function: trained_once(**sections) is a folder holding a tiny run trained there with
    write_config(folder, **sections) (run.yaml, run/, .rnn/cache, train.txt and test.txt), trained
    once per session for each distinct config.

    Read only: tests copy it into their folder with `trained_copy` (or read `tiny_run`).
    """
    from rnncli.config import load_config
    from rnncli.training import run_training

    folders: dict[str, Path] = {}

    def get(**sections) -> Path:
        if "dir" in sections.get("checkpoint", {}):
            raise ValueError("a shared run lives in its folder's run/: copies rewrite that folder's paths")
        key = json.dumps(sections, sort_keys=True)
        if key not in folders:
            folder = tmp_path_factory.mktemp("trained-once")
            (folder / "train.txt").write_text(TINY_TEXT * 8, encoding="utf-8")
            (folder / "test.txt").write_text(TINY_TEXT, encoding="utf-8")
            with working_in(folder):  # the run's .rnn/ (corpus cache) goes there, as in a test's workdir
                run_training(load_config(write_config(folder, **sections)))
            folders[key] = folder
        return folders[key]

    return get


@pytest.fixture(scope="session")
def tiny_run(trained_once) -> Path:
    """The run folder of the tiny model (write_config's defaults), trained once per session, for the
    tests that only read it.

    Tests must not write into it (no resume, no edits): those take a copy with `trained_copy`.
    """
    return trained_once() / "run"


def rewrite_recorded_paths(run: Path, replacements: dict[str, str]) -> None:
    """In a copied run folder, replace (old -> new) the paths the run recorded: in the config each
    checkpoint.json keeps (its checksum made again) and in metrics.jsonl's checkpoint names."""
    from rnncli import checkpoint as ckpt_mod

    def moved(text: str) -> str:
        for old, new in replacements.items():
            text = text.replace(old, new)
        return text

    metrics = run / "metrics.jsonl"
    metrics.write_text(moved(metrics.read_text(encoding="utf-8")), encoding="utf-8")
    for meta_path in run.glob("*/" + ckpt_mod.META):
        meta = json.loads(moved(meta_path.read_text(encoding="utf-8")))
        meta[ckpt_mod.META_DIGEST] = ckpt_mod._meta_digest(meta)
        meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")  # as saved


def copy_trained_run(source: Path, folder: Path, pointer: bool = False) -> Path:
    """Put into folder what training source's config there would have left: run.yaml, run/ and
    .rnn/cache, every path the run recorded (the config in each checkpoint.json, with its checksum
    made again; metrics.jsonl's checkpoint names; run.yaml) naming folder instead of source.  With
    pointer, also .rnn/last_run, as `rnn train` writes it (run_training alone writes none).
    Returns folder / "run"."""
    from rnncli import checkpoint as ckpt_mod

    run = folder / "run"
    shutil.copytree(source / "run", run)
    shutil.copytree(source / ".rnn", folder / ".rnn", dirs_exist_ok=True)
    run_yaml = (source / "run.yaml").read_text(encoding="utf-8")
    (folder / "run.yaml").write_text(run_yaml.replace(str(source), str(folder)), encoding="utf-8")
    rewrite_recorded_paths(run, {str(source): str(folder)})
    if pointer:
        ckpt_mod.remember_last_run(run, folder)
    return run


@pytest.fixture
def trained_copy(workdir, trained_once):
    """A function: trained_copy(pointer=False, **sections) gives workdir the run that training
    write_config(workdir, **sections) there would give (a copy of the session's, see
    copy_trained_run): pointer=True as after `rnn train` (.rnn/last_run), False as after
    run_training.  Returns workdir / "run", which the test may change at will."""

    def copy(pointer: bool = False, **sections) -> Path:
        return copy_trained_run(trained_once(**sections), workdir, pointer)

    return copy


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


@pytest.fixture(scope="session")
def golden_models(tmp_path_factory) -> tuple[dict[str, Path], list[dict]]:
    """test_golden's three models (`default` is configs/default.yaml as it is), trained once per
    session, and their `rnn train` records: (name -> run folder, records).  Read only."""
    from .test_golden import train_models

    return train_models(tmp_path_factory.mktemp("golden-models"))


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
