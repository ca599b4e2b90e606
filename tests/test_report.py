"""`rnn tokenize` (the model's view of a text) and `rnn report` (a run's per-epoch table)."""

import json

import pytest

from rnncli.cli import main


@pytest.fixture
def run(trained_copy):
    """workdir as `rnn train` of write_config(workdir) leaves it (a copy of the session's run)."""
    return trained_copy(pointer=True)


def test_tokenize_prints_one_sentence_per_line_with_unk(run, runner):
    text = "O menino acordou sentindo-se indisposto. A zebra voou.\nChoveu muito\n"
    result = runner.invoke(main, ["tokenize", "-c", str(run)], input=text)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "o menino acordou sentindo-se indisposto .",
        "a <unk> <unk> .",  # "zebra" and "voou" are not in the tiny corpus
        "choveu muito",
    ]


def test_tokenize_reads_files_and_uses_the_last_run(run, workdir, runner):
    (workdir / "a.txt").write_text("Ela saiu cedo.\n", encoding="utf-8")
    result = runner.invoke(main, ["tokenize", str(workdir / "a.txt")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ela saiu cedo .\n"


def test_report_prints_one_row_per_epoch(run, runner):
    result = runner.invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["epoch", "tokens", "train", "ppl"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
    as_json = runner.invoke(main, ["report", str(run), "--format", "json"])
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and all(r["valid_ppl"] > 1 for r in records)


def test_report_of_a_folder_without_a_run_is_a_clear_error(workdir, runner):
    result = runner.invoke(main, ["report", str(workdir)])
    assert result.exit_code == 2
    assert "metrics.jsonl" in result.stderr and "Traceback" not in result.output


def test_report_plot_writes_a_png(run, workdir, runner):
    pytest.importorskip("matplotlib")
    out = workdir / "curves.png"
    result = runner.invoke(main, ["report", str(run), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_plot_is_written_when_stdout_has_gone_away(run, workdir):
    """`rnn report RUN --plot f.png | true`: the image is output the user asked for, whatever stdout does."""
    pytest.importorskip("matplotlib")
    import os
    import subprocess
    import sys

    out = workdir / "curves.png"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rnncli", "report", str(run), "--plot", str(out)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Traceback" not in done.stderr


def test_report_says_matplotlib_is_missing_before_printing_the_table(run, workdir, runner, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: importing it fails
    result = runner.invoke(main, ["report", str(run), "--plot", str(workdir / "c.png")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "rnn: error: --plot needs matplotlib: pip install 'rnncli[plot]'"


def test_report_without_an_argument_reports_the_last_run(run, runner, monkeypatch):
    named = runner.invoke(main, ["report", str(run)])
    implicit = runner.invoke(main, ["report"])  # .rnn/last_run, as predict finds its model
    assert implicit.exit_code == 0, implicit.output
    assert implicit.stdout == named.stdout
    monkeypatch.setenv("RNN_CHECKPOINT", str(run / "nowhere"))
    missing = runner.invoke(main, ["report"])
    assert missing.exit_code == 2 and "RNN_CHECKPOINT" in missing.stderr


def test_report_of_a_checkpoint_folder_reports_its_run(run, runner):
    from rnncli.checkpoint import find_checkpoint

    named = runner.invoke(main, ["report", str(run)])
    of_checkpoint = runner.invoke(main, ["report", str(find_checkpoint(run))])
    assert of_checkpoint.exit_code == 0, of_checkpoint.output
    assert of_checkpoint.stdout == named.stdout
