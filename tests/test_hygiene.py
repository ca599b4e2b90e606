"""The test suite leaves the folder it is started from as it was.

A user who ran `rnn train` and then the README's test command must find their own model behind
`.rnn/last_run` afterwards, not a test model (issue 18): fixtures and tests work in temporary
folders, and conftest's session hook fails the run if the starting folder changed.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import changed_paths, folder_state, write_config

TESTS = Path(__file__).resolve().parent


def test_fixtures_at_work(tiny_run, workdir, runner):
    """Uses every shared fixture the way the suite does: the session's tiny model, a run of its own."""
    from rnncli.cli import main

    trained = runner.invoke(main, ["train", str(write_config(workdir)), "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert (workdir / ".rnn" / "last_run").exists()  # `rnn train` remembers its run where it ran
    answer = runner.invoke(main, ["predict", "-c", str(tiny_run), "o menino"])
    assert answer.exit_code == 0, answer.output
    assert answer.stdout.strip()


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
