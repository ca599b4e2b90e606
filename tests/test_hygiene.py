"""The test suite leaves the folder it is started from as it was.

A user who ran `rnn train` and then the README's test command must find their own model behind
`.rnn/last_run` afterwards, not a test model (issue 18): fixtures and tests work in temporary
folders, and conftest's session hook fails the run if the starting folder changed.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import changed_paths, copy_trained_run, folder_state, write_config

TESTS = Path(__file__).resolve().parent


def test_fixtures_at_work(tiny_run, trained_once, workdir, runner, tmp_path_factory, monkeypatch):
    """Uses every shared fixture the way the suite does: the session's tiny model, a run of its own,
    and a copy of the session's run, which must be the run that training in its folder leaves."""
    from rnncli.cli import main

    trained = runner.invoke(main, ["train", str(write_config(workdir)), "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert (workdir / ".rnn" / "last_run").exists()  # `rnn train` remembers its run where it ran
    answer = runner.invoke(main, ["predict", "-c", str(tiny_run), "o menino"])
    assert answer.exit_code == 0, answer.output
    assert answer.stdout.strip()

    copied = tmp_path_factory.mktemp("copied")
    assert copy_trained_run(trained_once(), copied, pointer=True) == copied / "run"
    assert _run_files(copied) == _run_files(workdir)  # byte for byte, but for paths and times
    answers = []
    for folder in (workdir, copied):  # the last-run pointer, the checkpoint's checksums: as trained there
        monkeypatch.chdir(folder)
        answer = runner.invoke(main, ["predict", "--format", "json", "o menino", "a mãe"])
        assert answer.exit_code == 0, answer.output
        answers.append(answer.stdout.replace(str(folder), "{folder}"))  # each names its own checkpoint
    assert answers[0] == answers[1]


_TIMES = {"train_seconds", "tokens_per_sec", "seconds", "rss_mb", "peak_rss_mb", "meta_sha256"}


def _run_files(folder: Path) -> dict[str, object]:
    """What training left in folder (run.yaml, run/, .rnn/), its own path written {folder} and the
    figures that change from run to run (times, speeds, memory, and so the checksum of checkpoint.json)
    left out."""

    def steady(value):
        if isinstance(value, dict):
            return {k: steady(v) for k, v in value.items() if k not in _TIMES}
        return [steady(v) for v in value] if isinstance(value, list) else value

    files = {}
    for path in sorted([folder / "run.yaml", *(folder / "run").rglob("*"), *(folder / ".rnn").rglob("*")]):
        if path.is_file():
            data = path.read_bytes().replace(str(folder).encode(), b"{folder}")
            if path.suffix == ".json":
                data = steady(json.loads(data))
            elif path.suffix == ".jsonl":
                data = [steady(json.loads(line)) for line in data.splitlines()]
            files[str(path.relative_to(folder))] = data
    return files


@pytest.mark.slow
def test_the_suite_leaves_its_starting_folder_as_it_was(tmp_path):
    start = tmp_path / "start"
    start.mkdir()
    (start / ".rnn").mkdir()
    (start / ".rnn" / "last_run").write_text("/home/user/checkpoints/default", encoding="utf-8")  # the user's model
    before = folder_state(start)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{TESTS / 'test_hygiene.py'}::test_fixtures_at_work",
        ],
        cwd=start,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert changed_paths(before, folder_state(start)) == []
    assert (start / ".rnn" / "last_run").read_text(encoding="utf-8") == "/home/user/checkpoints/default"


def test_changed_paths_names_what_was_created_changed_and_removed(tmp_path):
    (tmp_path / "kept.txt").write_text("a", encoding="utf-8")
    (tmp_path / "edited.txt").write_text("a", encoding="utf-8")
    (tmp_path / "gone.txt").write_text("a", encoding="utf-8")
    before = folder_state(tmp_path)
    (tmp_path / "edited.txt").write_text("bb", encoding="utf-8")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / ".rnn").mkdir()
    (tmp_path / ".rnn" / "last_run").write_text("x", encoding="utf-8")
    (tmp_path / "__pycache__").mkdir()  # Python's own cache is not the suite's doing
    assert changed_paths(before, folder_state(tmp_path)) == [
        "created .rnn",
        "created .rnn/last_run",
        "removed gone.txt",
        "changed edited.txt",
    ]
