"""Bad input through the CLI: each case gives one line on stderr naming the problem, the documented
exit code, no traceback, and leaves an existing run untouched."""

import os
import subprocess
import sys

import pytest

from rnncli import data as data_mod
from rnncli.cli import main

from .conftest import write_config


@pytest.fixture
def existing_run(trained_copy):
    """A finished run in workdir/run, as `rnn train` of a 1-epoch config leaves it (a copy of the
    session's); yields a function that asserts nothing in it changed."""
    run = trained_copy(pointer=True, train={"epochs": 1})

    def snapshot():
        return {p.relative_to(run): (p.stat().st_mtime_ns, p.stat().st_size) for p in run.rglob("*")}

    before = snapshot()
    yield lambda: snapshot() == before


def _one_error_line(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("rnn: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _train(runner, workdir, *extra, **sections):
    path = write_config(workdir, **sections)
    return runner.invoke(main, ["train", str(path), "-q", "--overwrite", *extra])


# --- corpus files ---------------------------------------------------------------------------------


def test_missing_corpus(workdir, runner, existing_run):
    _one_error_line(_train(runner, workdir, data={"train": "nowhere.txt"}), 2, "data.train", "nowhere.txt")
    assert existing_run()


def test_empty_corpus(workdir, runner, existing_run):
    (workdir / "empty.txt").write_bytes(b"")
    _one_error_line(_train(runner, workdir, data={"train": "empty.txt"}), 2, "empty.txt", "no tokens")
    assert existing_run()


def test_blank_corpus(workdir, runner):
    (workdir / "blank.txt").write_text("\n \n\t\n")
    _one_error_line(_train(runner, workdir, data={"train": "blank.txt"}), 2, "blank.txt", "no tokens")


def test_unreadable_corpus(workdir, runner, monkeypatch, existing_run):
    real_open = open

    def no_permission(path, *args, **kwargs):
        if str(path).endswith("train.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(data_mod, "open", no_permission, raising=False)
    _one_error_line(_train(runner, workdir), 2, "train.txt", "cannot read", "Permission denied")
    assert existing_run()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_corpus_for_real(workdir, runner):
    (workdir / "train.txt").chmod(0)
    _one_error_line(_train(runner, workdir), 2, "train.txt", "cannot read")


def test_binary_corpus(workdir, runner, existing_run):
    (workdir / "blob.txt").write_bytes(bytes(range(256)) * 50)
    _one_error_line(_train(runner, workdir, data={"train": "blob.txt"}), 2, "blob.txt", "binary")
    assert existing_run()


def test_folder_without_text(workdir, runner):
    (workdir / "pics").mkdir()
    (workdir / "pics" / "a.png").write_bytes(b"\x89PNG")
    _one_error_line(_train(runner, workdir, data={"train": "pics"}), 2, "pics", "no text files")


def test_non_utf8_corpus_reports_file_and_offset(workdir, runner, existing_run):
    (workdir / "latin.txt").write_bytes("o menino acordou\nà noite não dormiu\n".encode("latin-1") * 20)
    line = _one_error_line(_train(runner, workdir, data={"train": "latin.txt"}), 2, "latin.txt", "utf-8")
    assert "byte offset 17" in line and "data.errors" in line and "data.encoding" in line
    assert existing_run()


@pytest.mark.parametrize("option", ["data.encoding=latin-1", "data.errors=replace"])
def test_non_utf8_corpus_with_an_explicit_choice_trains(workdir, runner, option):
    (workdir / "latin.txt").write_bytes("o menino acordou\nà noite não dormiu\n".encode("latin-1") * 20)
    result = _train(runner, workdir, "--set", option, data={"train": "latin.txt"}, train={"epochs": 1})
    assert result.exit_code == 0, result.output


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from Linux's /proc")
def test_a_200_mb_line_is_refused_quickly_in_little_memory(workdir):
    """200 MB without a line break or space: read in 1 MiB pieces and refused, never held whole."""
    blob = workdir / "one_line.txt"
    chunk = b"x" * (1 << 20)
    with blob.open("wb") as f:
        for _ in range(200):
            f.write(chunk)
    path = write_config(workdir, data={"train": str(blob)})
    # the child reports its own peak resident memory (VmHWM, in KiB) on stdout after the command ends;
    # getrusage would also count the pytest process it was forked from
    script = (
        "import sys\n"
        "from rnncli.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as e:\n"
        "    print(next(x.split()[1] for x in open('/proc/self/status') if x.startswith('VmHWM')))\n"
        "    raise\n"
    )
    out = subprocess.run([sys.executable, "-c", script, "train", str(path), "-q"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"rnn: error: {blob}: more than 1,048,576 bytes without a space or line break")
    peak_mb = int(out.stdout.strip()) / 1024
    assert peak_mb < 150, peak_mb  # the interpreter and numpy alone take some 40 MB


# --- config --------------------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column(workdir, runner):
    (workdir / "bad.yaml").write_text("train:\n  epochs: [1, 2\n  lr: 3\n")
    _one_error_line(runner.invoke(main, ["train", str(workdir / "bad.yaml")]), 2, "bad.yaml:3:5", "YAML syntax error")


@pytest.mark.parametrize(
    "setting, needles",
    [
        ("train.epochs=three", ["train.epochs", "integer"]),
        ("model.hidden_size=0", ["model.hidden_size", ">= 1"]),
        ("train.bptt=-5", ["train.bptt", ">= 1"]),
        ("train.batch_size=0", ["train.batch_size"]),
        ("train.lr=-1", ["train.lr"]),
        ("tokenizer.max_vocab=2", ["tokenizer.max_vocab", ">= 3"]),  # smaller than <unk> + <eos> + a word
        ("data.train=[]", ["data.train", "empty"]),
    ],
)
def test_wrong_types_and_sizes(workdir, runner, existing_run, setting, needles):
    _one_error_line(_train(runner, workdir, "--set", setting), 2, *needles)
    assert existing_run()


def test_bptt_longer_than_the_corpus_allows(workdir, runner, existing_run):
    _one_error_line(_train(runner, workdir, "--set", "train.bptt=5000"), 2, "train.bptt", "5000")
    assert existing_run()


def test_batch_size_larger_than_the_corpus_allows(workdir, runner):
    _one_error_line(_train(runner, workdir, "--set", "train.batch_size=100000"), 2, "train.batch_size")


@pytest.mark.parametrize("setting", ["train.epochs", "train.epochs=[1,", "=3", "epochs=3", "train.epoch=3"])
def test_malformed_set(workdir, runner, existing_run, setting):
    _one_error_line(_train(runner, workdir, "--set", setting), 2, "train.epoch")
    assert existing_run()


# --- prompts (predict is another module's; these check it end to end) ------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "o menino\x00\x07\x1b[31m acordou\x7f",
        "palavra " * 12_500,  # 100,000 characters
        "a" * 100_000,
        "olá мир 世界 مرحبا שלום",
        "😀 a mãe 👍🏽 trouxe 👨‍👩‍👧",
        "\u200b\u200d\ufeff",
    ],
    ids=["control", "long-words", "long-run", "mixed-scripts", "emoji", "invisible"],
)
def test_odd_prompts_get_predictions(existing_run, runner, prompt):
    result = runner.invoke(main, ["predict", "--format", "json", prompt])
    assert result.exit_code == 0, result.output
    assert '"predictions"' in result.stdout


def test_odd_prompts_on_stdin(existing_run, runner):
    lines = ["o menino\x07", "😀", "olá мир", "x" * 100_000]
    result = runner.invoke(main, ["predict", "-", "--format", "json"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == len(lines)


def test_empty_stdin(existing_run, runner):
    for command in (["predict", "-"], ["predict"]):
        result = runner.invoke(main, command, input="")
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
    result = runner.invoke(main, ["eval", "-"], input="")
    _one_error_line(result, 2, "no text")


def test_a_vocabulary_of_only_the_special_tokens_is_a_config_error(workdir, runner):
    from rnncli.cli import main

    path = write_config(workdir, tokenizer={"min_count": 10_000})
    result = runner.invoke(main, ["train", str(path), "-q"])
    assert result.exit_code == 2
    assert result.stderr.startswith("rnn: error: tokenizer.min_count") and "only <unk> and <eos>" in result.stderr
    assert not (workdir / "run" / "index.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "data.txt", "--max-ppl", "nan"],
        ["eval", "data.txt", "--max-ppl", "inf"],
        ["eval", "data.txt", "--min-top5", "nan"],
        ["predict", "a casa", "--generate", "3", "--temperature", "inf"],
        ["predict", "a casa", "--generate", "3", "--top-p", "nan"],
        ["predict", "a casa", "--min-prob", "nan"],
    ],
)
def test_non_finite_numbers_are_refused(runner, args):
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert "is not a finite number" in result.stderr


def test_json_lines_are_strict_json_even_for_infinite_values(workdir, runner):
    import json
    import math

    from rnncli.strictjson import dumps

    line = dumps({"ppl": math.inf, "lp": [-math.inf, 1.5], "x": {"y": math.nan}})
    assert json.loads(line) == {"ppl": None, "lp": [None, 1.5], "x": {"y": None}}
    for token in ("NaN", "Infinity"):
        assert token not in line


@pytest.mark.parametrize(
    "args, needle",
    [
        (["predict", "--nope"], "No such option '--nope'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["train"], "Missing argument 'CONFIG'"),
        (["predict", "--top-k", "0", "a"], "0 is not in the range x>=1"),
        (["train", "."], "is a directory"),  # a folder where a file belongs
    ],
)
def test_click_usage_errors_are_one_rnn_error_line(runner, args, needle):
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("rnn: error: ") and needle in line and line.endswith("--help'")


def test_a_stale_last_run_pointer_says_where_the_path_came_from(workdir, runner):
    (workdir / ".rnn").mkdir()
    (workdir / ".rnn" / "last_run").write_text(str(workdir / "gone"))
    result = runner.invoke(main, ["predict", "a casa"])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert ".rnn/last_run" in line and str(workdir / "gone") in line and "--checkpoint" in line


def test_a_missing_rnn_checkpoint_says_it_came_from_the_environment(workdir, runner, monkeypatch):
    monkeypatch.setenv("RNN_CHECKPOINT", str(workdir / "nowhere"))
    result = runner.invoke(main, ["eval", "-"], input="a casa\n")
    assert result.exit_code == 2
    assert "$RNN_CHECKPOINT" in result.stderr and str(workdir / "nowhere") in result.stderr
