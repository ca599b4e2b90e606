"""Shared fixtures: a tiny corpus and config in a temporary folder, run in-process."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

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
    from rnncli.train import run_training

    folder = tmp_path_factory.mktemp("tiny-run")
    (folder / "train.txt").write_text(TINY_TEXT * 8, encoding="utf-8")
    (folder / "test.txt").write_text(TINY_TEXT, encoding="utf-8")
    run_training(load_config(write_config(folder)))
    return folder / "run"


@pytest.fixture
def runner():
    """Runs `rnn` in-process; stdout and stderr are kept apart."""
    return CliRunner()
