"""A command that found its model by itself ($RNN_CHECKPOINT, the last `rnn train` here) says which
model answered: in every JSON record (`checkpoint`), and in one stderr line on a terminal."""

import json
import os
import sys
from pathlib import Path

import pytest

from rnncli.checkpoint import find_checkpoint
from rnncli.cli import main

COMMANDS = {
    "predict": (["predict", "--format", "json", "o menino", "a mãe"], None),
    "complete": (["predict", "--format", "json", "--complete", "o menino acord"], None),
    "generate": (["predict", "--format", "json", "--generate", "3", "--seed", "1", "o menino"], None),
    "beam": (["predict", "--format", "json", "--generate", "2", "--beam", "2", "o menino"], None),
    "score": (["score", "--format", "json"], "o menino acordou.\na mãe trouxe chá.\n"),
    "fill": (["fill", "--format", "json", "o menino ___ em casa."], None),
    "eval": (["eval", "--format", "json"], "o menino acordou.\n"),
}


@pytest.mark.parametrize("found_by", ["env", "last_run", "option"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_json_record_names_the_checkpoint_that_answered(
    runner, workdir, tiny_run, monkeypatch, command, found_by
):
    args, stdin = COMMANDS[command]
    if found_by == "env":
        monkeypatch.setenv("RNN_CHECKPOINT", str(tiny_run))
    elif found_by == "last_run":
        (workdir / ".rnn").mkdir()
        (workdir / ".rnn" / "last_run").write_text(str(tiny_run), encoding="utf-8")
    else:
        args = [args[0], "-c", str(tiny_run), *args[1:]]
    result = runner.invoke(main, args, input=stdin)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records
    assert {r["checkpoint"] for r in records} == {str(find_checkpoint(tiny_run).resolve())}
    assert result.stderr == ""  # not a terminal: no talk


def _on_a_terminal(argv: list[str], cwd: Path, env: dict) -> str:
    """What a terminal shows for a command run on it (stdout and stderr together)."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    shown = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        shown += data
    os.close(fd)
    os.waitpid(pid, 0)
    return shown.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork") or not Path("/dev/ptmx").exists(), reason="needs a pseudo-terminal")
def test_on_a_terminal_a_model_found_by_itself_is_named_once(workdir, tiny_run):
    env = {k: v for k, v in os.environ.items() if k != "RNN_CHECKPOINT"}
    (workdir / ".rnn").mkdir()
    (workdir / ".rnn" / "last_run").write_text(str(tiny_run), encoding="utf-8")
    where = str(find_checkpoint(tiny_run).resolve())
    predict = [sys.executable, "-m", "rnncli", "predict", "o menino"]
    shown = _on_a_terminal(predict, workdir, env)
    assert shown.count(f"rnn: model {where} (found through .rnn/last_run)") == 1, shown
    shown = _on_a_terminal(predict, workdir, {**env, "RNN_CHECKPOINT": str(tiny_run)})
    assert shown.count(f"rnn: model {where} (found through $RNN_CHECKPOINT)") == 1, shown
    shown = _on_a_terminal([*predict, "-c", str(tiny_run)], workdir, env)  # named by the user: nothing to add
    assert "rnn: model" not in shown and shown.strip()


def test_without_a_terminal_the_answer_is_unchanged(runner, workdir, tiny_run, monkeypatch):
    monkeypatch.setenv("RNN_CHECKPOINT", str(tiny_run))
    implicit = runner.invoke(main, ["predict", "o menino"])
    explicit = runner.invoke(main, ["predict", "-c", str(tiny_run), "o menino"])
    assert implicit.exit_code == explicit.exit_code == 0
    assert implicit.stdout == explicit.stdout and implicit.stderr == ""
