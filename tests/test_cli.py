"""The `rnn` command in-process: exit codes, stdout and stderr apart, stdin, JSON."""

import json
import sys

import pytest

from rnncli.cli import main

from .conftest import write_config


@pytest.fixture
def trained(workdir, runner):
    cfg = write_config(workdir)
    result = runner.invoke(main, ["train", str(cfg), "--quiet", "--format", "json"])
    assert result.exit_code == 0, result.output
    return workdir, json.loads(result.stdout)


@pytest.fixture
def trained_here(trained_copy, workdir):
    """workdir as `rnn train` of write_config(workdir) leaves it, for the tests of what comes after
    training (a copy of the session's run)."""
    trained_copy(pointer=True)
    return workdir


@pytest.mark.parametrize("command", [[], ["train"], ["predict"], ["eval"]])
def test_help_of_every_command(runner, command):
    result = runner.invoke(main, command + ["--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


@pytest.mark.slow  # a subprocess
def test_python_dash_m_works_like_rnn():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "rnncli", "--help"], capture_output=True, text=True, check=True)
    assert "Usage: rnn" in out.stdout


def test_train_json_summary_has_the_contract_keys(trained):
    _, summary = trained
    for key in ("checkpoint", "epochs", "tokens", "train_seconds", "tokens_per_sec", "valid_loss", "valid_ppl"):
        assert key in summary
    assert summary["epochs"] == 2
    assert summary["tokens"] > 0


def test_train_writes_metrics_and_keeps_best_and_last(trained):
    folder, _ = trained
    run = folder / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    index = json.loads((run / "index.json").read_text())
    assert (run / index["last"] / "model.safetensors").exists()
    assert (run / index["best"] / "model.safetensors").exists()


def test_predict_uses_the_last_trained_run_and_prints_json(trained_here, runner):
    result = runner.invoke(main, ["predict", "sentindo-se", "-k", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert obj["prompt"] == "sentindo-se"
    assert len(obj["predictions"]) == 3
    probs = [p["prob"] for p in obj["predictions"]]
    assert probs == sorted(probs, reverse=True)
    assert all(p["word"] not in ("<unk>", "<eos>") for p in obj["predictions"])


def test_predict_reads_prompts_from_stdin_in_order(trained_here, runner):
    prompts = ["o menino", "a mãe", "choveu muito"]
    result = runner.invoke(main, ["predict", "-", "--format", "json"], input="\n".join(prompts) + "\n")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["prompt"] for line in result.stdout.splitlines()] == prompts


def test_predict_text_output_and_generate(trained_here, runner):
    result = runner.invoke(main, ["predict", "o médico"])
    assert result.exit_code == 0
    assert len(result.stdout.strip().split(", ")) == 5
    gen1 = runner.invoke(main, ["predict", "o menino", "--generate", "6", "--seed", "3"])
    gen2 = runner.invoke(main, ["predict", "o menino", "--generate", "6", "--seed", "3"])
    assert gen1.exit_code == 0 and gen1.stdout == gen2.stdout
    assert gen1.stdout.startswith("o menino")


def test_eval_prints_every_metric_as_json(trained_here, runner):
    folder = trained_here
    result = runner.invoke(main, ["eval", str(folder / "train.txt"), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= {"tokens", "loss", "perplexity", "bits_per_word", "top1", "top5", "oov_rate"}
    assert out["perplexity"] > 1 and 0 <= out["top1"] <= out["top5"] <= 1


def test_eval_reads_stdin_and_gates(trained_here, runner):
    text = "O menino acordou sentindo-se indisposto.\n"
    ok = runner.invoke(main, ["eval", "-", "--max-ppl", "1e9", "--format", "json"], input=text)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["gate"]["passed"] is True
    bad = runner.invoke(main, ["eval", "--max-ppl", "1.0"], input=text)
    assert bad.exit_code == 1
    assert "perplexity" in bad.stderr and "--max-ppl" in bad.stderr


def test_predict_without_a_model_tells_the_user_to_train(workdir, runner):
    result = runner.invoke(main, ["predict", "olá"])
    assert result.exit_code == 2
    assert "rnn train" in result.stderr
    assert "Traceback" not in result.output


def test_config_errors_exit_2_with_one_line(workdir, runner):
    cfg = write_config(workdir)
    result = runner.invoke(main, ["train", str(cfg), "--set", "model.hiden_size=3"])
    assert result.exit_code == 2
    assert "model.hidden_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_corpus_is_a_clear_error(workdir, runner):
    cfg = write_config(workdir, data={"train": "nowhere.txt"})
    result = runner.invoke(main, ["train", str(cfg)])
    assert result.exit_code == 2
    assert "nowhere.txt" in result.stderr and "data.train" in result.stderr


def test_a_second_train_does_not_overwrite_a_run(trained_here, runner):
    folder = trained_here
    result = runner.invoke(main, ["train", str(folder / "run.yaml")])
    assert result.exit_code == 2
    assert "--resume" in result.stderr


def test_the_program_freezes_what_is_left_for_a_quick_exit_and_a_call_with_arguments_does_not(runner, monkeypatch):
    """As the `rnn` program (main() with no argument list, argv from the process), the objects left
    at the end are frozen out of the collector's sight, so that shutdown does not scan them; a call
    with an argument list (a test's, a caller's) or standalone_mode=False leaves the collector alone."""
    import gc

    before = gc.get_freeze_count()
    result = runner.invoke(main, ["predict", "--help"])
    assert result.exit_code == 0 and gc.get_freeze_count() == before
    monkeypatch.setattr(sys, "argv", ["rnn", "--version"])
    assert main(standalone_mode=False) == 0  # a caller that goes on after the command
    assert gc.get_freeze_count() == before
    try:
        with pytest.raises(SystemExit) as stop:
            main()
        assert stop.value.code == 0
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # this test process goes on: its objects back in the collector's care


def test_a_command_runs_with_a_long_first_gc_generation_and_restores_it(runner, monkeypatch):
    """A command's start imports thousands of objects: the collector's first generation is made
    long while it runs (start-up time), and the caller's setting comes back after, error or not."""
    import gc

    from rnncli.cli import predict
    from rnncli.errors import UsageError

    seen = []

    def record(*args, **kwargs):
        seen.append(gc.get_threshold())
        raise UsageError("stop here")

    monkeypatch.setattr(predict, "open_model", record)
    before = gc.get_threshold()
    result = runner.invoke(main, ["predict", "o menino"])
    assert result.exit_code == 2 and "stop here" in result.stderr
    assert seen == [(100_000, *before[1:])]
    assert gc.get_threshold() == before
