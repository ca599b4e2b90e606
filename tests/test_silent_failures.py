"""Issue 13, "no silent failure": a run's summary, edited checkpoints, partial scoring, full disks."""

import json
import math

import pytest

from rnncli.config import load_config
from rnncli.training import run_training

from .conftest import write_config


def _consistent(summary):
    assert summary["tokens_per_sec"] == pytest.approx(summary["tokens"] / summary["train_seconds"])
    assert summary["valid_ppl"] == pytest.approx(math.exp(summary["valid_loss"]))


def test_the_summary_describes_the_run_finished_extended_or_fresh(workdir):
    path = write_config(workdir)
    fresh = run_training(load_config(path, ["train.epochs=2"]))
    _consistent(fresh)
    assert fresh["session_tokens"] == fresh["tokens"]
    last = [json.loads(line) for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert fresh["valid_loss"] == last["valid_loss"]

    finished = run_training(load_config(path, ["train.epochs=2"]), resume=True)  # nothing left to train
    _consistent(finished)
    for key in ("valid_loss", "valid_ppl", "best_valid_loss", "tokens", "steps", "epochs", "train_seconds"):
        assert finished[key] == fresh[key], key
    assert finished["session_tokens"] == 0

    extended = run_training(load_config(path, ["train.epochs=3"]), resume=True)
    _consistent(extended)
    assert extended["train_seconds"] > fresh["train_seconds"]  # all sessions together
    assert extended["session_tokens"] == extended["tokens"] - fresh["tokens"] > 0
    last = [json.loads(line) for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert extended["valid_loss"] == last["valid_loss"] != fresh["valid_loss"]


def test_an_edited_checkpoint_json_is_refused_with_the_file_named(trained_copy, runner):
    from rnncli.checkpoint import load_checkpoint
    from rnncli.cli import main

    run = trained_copy(train={"epochs": 1})  # as run_training leaves it
    meta_path = load_checkpoint(run).path / "checkpoint.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta_path.write_text(json.dumps(meta, indent=4, ensure_ascii=False), encoding="utf-8")  # layout only
    assert runner.invoke(main, ["predict", "o menino", "-c", "run"]).exit_code == 0

    meta["tokenizer"]["lowercase"] = not meta["tokenizer"]["lowercase"]  # a setting that changes predictions
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    for args in (["predict", "o menino"], ["eval", "train.txt"], ["score", "train.txt"], ["tokenize", "train.txt"]):
        result = runner.invoke(main, [*args, "-c", "run"])
        assert result.exit_code == 1, args
        assert "checkpoint.json: checksum mismatch" in result.stderr and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("streams", [1, 2, 3, 7, 50, 10_000])
def test_eval_scores_every_token_whatever_the_number_of_streams(streams):
    import numpy as np

    from rnncli.infer import evaluate
    from rnncli.model import ModelShape, RNNModel

    model = RNNModel(ModelShape(vocab_size=11, cell="lstm", embedding_size=4, hidden_size=5, layers=2))
    model.init_params(np.random.default_rng(0), 0.5)
    ids = np.random.default_rng(1).integers(0, 11, size=123).astype(np.int32)
    whole = evaluate(model, ids, streams=streams, start_id=1, unk_id=0)
    assert whole.tokens == len(ids) and whole.oov == int(np.sum(ids == 0))
    # the pieces' own shares add up to the whole (the data-parallel validation relies on it)
    pieces = max(1, min(streams, len(ids)))
    cuts = sorted({0, pieces // 3, pieces // 2, pieces})
    parts = [evaluate(model, ids, streams=streams, start_id=1, part=(a, b)) for a, b in zip(cuts, cuts[1:])]
    assert sum(p.tokens for p in parts) == whole.tokens
    assert sum(p.nll for p in parts) == pytest.approx(whole.nll, rel=1e-6)
    if streams == 1:  # one stream is the exact, carried-state score: the same as one step at a time
        state, nll = model.initial_state(1), 0.0
        for x, y in zip(np.concatenate([[1], ids[:-1]]), ids):
            top, state, _ = model.hidden(np.array([[x]], dtype=np.int32), state)
            logits = top.reshape(1, -1) @ model.params["decoder.weight"].T + model.params["decoder.bias"]
            logits = logits.astype(np.float64)
            nll -= logits[0, y] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        assert whole.nll == pytest.approx(nll, rel=1e-4)


def test_rnn_eval_reports_every_token_of_the_text(trained_copy, runner):
    from rnncli.cli import main

    trained_copy(train={"epochs": 1})  # as run_training leaves it
    counts = set()
    for n in ("1", "4", "700", "100000"):
        result = runner.invoke(main, ["eval", "train.txt", "-c", "run", "--batch-size", n, "--format", "json"])
        assert result.exit_code == 0, result.stderr
        counts.add(json.loads(result.stdout)["tokens"])
    tokens = runner.invoke(main, ["tokenize", "train.txt", "-c", "run"]).stdout.split("\n")
    expected = sum(len(line.split()) + 1 for line in tokens[:-1])  # each line's words and its <eos>
    assert counts == {expected}


def _rnn(args, cwd, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "rnncli", *args], cwd=cwd, capture_output=False, text=True, **kw)


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_or_closed_stdout_is_one_line_and_exit_1(workdir, trained_copy):
    import subprocess
    import sys

    trained_copy(train={"epochs": 1})  # as run_training leaves it
    cases = [["predict", "o menino"], ["eval", "train.txt"], ["score", "train.txt"], ["tokenize", "train.txt"]]
    for args in cases:
        with open("/dev/full", "w") as full:
            result = _rnn([*args, "-c", "run"], workdir, stdout=full, stderr=subprocess.PIPE)
        assert result.returncode == 1, args
        assert result.stderr == "rnn: error: cannot write the results to stdout: No space left on device\n", args
    closed = subprocess.run(
        ["sh", "-c", f"exec {sys.executable} -m rnncli predict 'o menino' -c run >&-"],
        cwd=workdir,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert closed.returncode == 1 and closed.stderr.startswith("rnn: error: stdout is closed")
    assert closed.stderr.count("\n") == 1


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_what_was_saved(workdir, monkeypatch):
    import errno

    from rnncli import checkpoint
    from rnncli.errors import CheckpointError

    real = checkpoint._write_bytes
    calls = {"n": 0, "fail_after": 0}

    def full_disk(path, data):
        calls["n"] += 1
        if calls["n"] > calls["fail_after"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(checkpoint, "_write_bytes", full_disk)
    path = write_config(workdir, train={"epochs": 2})
    with pytest.raises(CheckpointError, match="no checkpoint was saved: free some space and start the run again"):
        run_training(load_config(path))
    assert not (workdir / "run").exists()  # a run that never saved leaves no folder behind

    calls.update(n=0, fail_after=5)  # the first checkpoint (4 files and the index) lands, the second does not
    with pytest.raises(CheckpointError, match=r"the previous checkpoint ckpt-\S+ is kept: .* --resume"):
        run_training(load_config(path))
    saved = sorted(p.name for p in (workdir / "run").iterdir())
    assert [n for n in saved if n.startswith("ckpt-")] == [json.loads((workdir / "run/index.json").read_text())["last"]]
    assert not [n for n in saved if n.startswith(".tmp")]
    monkeypatch.setattr(checkpoint, "_write_bytes", real)
    resumed = run_training(load_config(path), resume=True)  # space freed: the run goes on from what was kept
    assert resumed["epochs"] == 2


def test_a_model_too_large_for_memory_is_refused_before_it_is_allocated(workdir):
    from rnncli.errors import ResourceError

    huge = write_config(workdir, model={"hidden_size": 1_000_000, "embedding_size": 1_000_000})
    with pytest.raises(ResourceError, match=r"needs at least [\d.]+ GiB .* GiB is available; lower model"):
        run_training(load_config(huge))
    assert not (workdir / "run").exists()


def test_prompt_files_are_read_as_train_reads_them_gzip_encoding_and_bad_lines(workdir, runner):
    import gzip

    from rnncli.cli import main

    (workdir / "train.txt").write_text((workdir / "train.txt").read_text(encoding="utf-8"), encoding="latin-1")
    run_training(load_config(write_config(workdir, data={"encoding": "latin-1"}, train={"epochs": 1})))
    prompts = ["o menino", "a mãe trouxe", "sentindo-se"]
    (workdir / "p.txt").write_text("\n".join(prompts) + "\n", encoding="latin-1")  # the checkpoint's encoding
    with gzip.open(workdir / "p.txt.gz", "wt", encoding="latin-1") as f:
        f.write("\n".join(prompts) + "\n")
    reference = runner.invoke(main, ["predict", *prompts, "-c", "run"])
    assert reference.exit_code == 0
    for args in (["predict", "--input", "p.txt"], ["predict", "--input", "p.txt.gz"]):
        result = runner.invoke(main, [*args, "-c", "run"])
        assert result.exit_code == 0 and result.stdout == reference.stdout, args
    plain = runner.invoke(main, ["score", "p.txt", "-c", "run"])
    assert plain.exit_code == 0 and "a mãe trouxe" in plain.stdout
    assert runner.invoke(main, ["score", "p.txt.gz", "-c", "run"]).stdout == plain.stdout

    # a bad line among many: named by its number; with --errors replace, replaced and the rest answered
    (workdir / "train.txt").write_text((workdir / "train.txt").read_text(encoding="latin-1"), encoding="utf-8")
    run_training(load_config(write_config(workdir, checkpoint={"dir": str(workdir / "utf8")}, train={"epochs": 1})))
    (workdir / "bad.txt").write_bytes(b"o menino\nele \xff\xfe saiu\nsentindo-se\n")
    for command in (["predict", "--input"], ["score"]):
        strict = runner.invoke(main, [*command, "bad.txt", "-c", "utf8"])
        assert strict.exit_code == 2, command
        assert strict.stderr.startswith("rnn: error: bad.txt: line 2 is not valid utf-8") and "--errors replace" in (
            strict.stderr
        )
        replaced = runner.invoke(main, [*command, "bad.txt", "-c", "utf8", "--errors", "replace"])
        assert replaced.exit_code == 0, command
        warning = "rnn: warning: bad.txt: line 2 is not valid utf-8; its bad bytes were replaced (U+FFFD)\n"
        assert replaced.stderr == warning
        assert len(replaced.stdout.splitlines()) == 3 and "\ufffd" in replaced.stdout.splitlines()[1]


def test_stdin_is_read_as_files_are_by_every_command_that_reads_text(tiny_run, workdir, runner):
    from rnncli.cli import main

    text = "o menino acordou sentindo-se indisposto.\na mãe trouxe um chá.\n"
    (workdir / "good.txt").write_text(text, encoding="utf-8")
    (workdir / "bad.txt").write_bytes(b"o menino\nele \xff\xfe saiu\nsentindo-se\n")
    run = ["-c", str(tiny_run)]
    for command in (["eval", "--format", "json"], ["tokenize"], ["fill"]):
        if command == ["fill"]:
            (workdir / "good.txt").write_text("o ___ acordou\n", encoding="utf-8")
        from_file = runner.invoke(
            main, [*command, *run, "good.txt"] if command != ["fill"] else [*command, *run, "--input", "good.txt"]
        )
        from_stdin = runner.invoke(main, [*command, *run, "-"], input=(workdir / "good.txt").read_bytes())
        assert from_file.exit_code == 0 and from_stdin.stdout == from_file.stdout, command
        # bytes that are not utf-8 on stdin: one line naming stdin and the line, not a silent <unk>
        bad = runner.invoke(main, [*command, *run, "-"], input=(workdir / "bad.txt").read_bytes())
        named = [line for line in bad.stderr.splitlines() if line.startswith("rnn: error: stdin: line 2 is not valid")]
        assert bad.exit_code == 2 and named and named[0].startswith("rnn: error: stdin: line 2 is not valid utf-8"), (
            command
        )
        replaced = runner.invoke(
            main, [*command, *run, "-", "--errors", "replace"], input=(workdir / "bad.txt").read_bytes()
        )
        assert replaced.stderr.startswith("rnn: warning: stdin: line 2 is not valid utf-8"), command
    for command in (["eval"], ["tokenize"]):  # a file: the hint is an option of this command, not a config key
        bad = runner.invoke(main, [*command, *run, "bad.txt"])
        assert bad.exit_code == 2 and "bad.txt: not valid utf-8 at byte offset 13" in bad.stderr, command
        assert "--errors replace" in bad.stderr and "data.errors" not in bad.stderr
        assert runner.invoke(main, [*command, *run, "bad.txt", "--errors", "replace"]).exit_code == 0


def test_generate_zero_is_refused_and_the_range_is_in_the_help(trained_copy, runner):
    from rnncli.cli import main

    trained_copy(train={"epochs": 1})  # as run_training leaves it
    result = runner.invoke(main, ["predict", "o menino", "-c", "run", "--generate", "0"])
    assert result.exit_code == 2 and result.stderr.startswith("rnn: error: Invalid value for '--generate'")
    assert "N >= 1" in runner.invoke(main, ["predict", "--help"]).stdout


def test_a_damaged_last_checkpoint_says_how_to_resume_from_an_intact_one(workdir, runner):
    from rnncli.cli import main

    path = write_config(workdir, train={"epochs": 2}, checkpoint={"dir": str(workdir / "run"), "keep": 2})
    run_training(load_config(path))
    index = json.loads((workdir / "run/index.json").read_text())
    older = [n for n in index["recent"] if n != index["last"]][0]
    weights = workdir / "run" / index["last"] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 1  # one flipped bit in the last checkpoint's weights
    weights.write_bytes(bytes(data))

    resumed = runner.invoke(main, ["train", str(path), "-q", "--resume", "--set", "train.epochs=3"])
    assert resumed.exit_code == 1 and resumed.stderr.count("\n") == 1
    assert "model.safetensors: checksum mismatch" in resumed.stderr
    assert resumed.stderr.rstrip().endswith(f"{older} is intact: resume from it with --resume --from {older}")
    reading = runner.invoke(main, ["predict", "o menino", "-c", "run"])  # best == last here
    assert reading.exit_code == 1 and f"use --checkpoint run/{older}" in reading.stderr

    index["best"] = older  # as when a later epoch validated worse
    (workdir / "run/index.json").write_text(json.dumps(index))
    resumed = runner.invoke(main, ["train", str(path), "-q", "--resume", "--set", "train.epochs=3"])
    assert resumed.stderr.rstrip().endswith("is intact: resume from it with --resume --from best")
    ok = runner.invoke(main, ["train", str(path), "-q", "--resume", "--from", "best", "--set", "train.epochs=3"])
    assert ok.exit_code == 0, ok.stderr
    records = [json.loads(line) for line in (workdir / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]  # the damaged epoch's record was redone, not kept twice
    bad = runner.invoke(main, ["train", str(path), "-q", "--from", "best"])
    assert bad.exit_code == 2 and "add --resume" in bad.stderr


def test_the_command_line_itself_answers_in_one_line(tiny_run, runner):
    from rnncli.cli import main

    nothing = runner.invoke(main, [])
    assert nothing.exit_code == 2 and nothing.stderr.count("\n") == 1
    assert nothing.stderr.startswith("rnn: error: no command given: one of eval, export, fill, predict, quantize")
    for args, command in ((["predict", "-k"], "predict"), (["tokenize", "-c"], "tokenize")):
        missing = runner.invoke(main, args)  # the option parser's own errors carry no context
        assert missing.exit_code == 2 and missing.stderr.endswith(f"; see 'rnn {command} --help'\n"), args


def test_options_that_do_nothing_together_are_refused_and_odd_numbers_work(tiny_run, runner):
    from rnncli.cli import main

    run = ["-c", str(tiny_run)]
    for args, says in (
        (["-g", "4", "-k", "3", "--seed", "5"], "--top-k lists the next words; with --generate it does nothing"),
        (["-g", "2", "--beam", "2", "--seed", "3"], "it does not sample: drop --seed"),
        (["-g", "2", "--beam", "2", "-k", "1"], "--top-k lists the next words"),
    ):
        result = runner.invoke(main, ["predict", *run, *args, "o menino"])
        assert result.exit_code == 2 and says in result.stderr, args
    # a temperature so small that dividing by it overflows is greedy decoding, as 0 is
    greedy = runner.invoke(main, ["predict", *run, "-g", "4", "-t", "0", "o menino"])
    tiny = runner.invoke(main, ["predict", *run, "-g", "4", "-t", "1e-320", "--seed", "1", "o menino"])
    assert tiny.exit_code == 0 and tiny.stdout == greedy.stdout and "<unk>" not in tiny.stdout and tiny.stderr == ""
    # a beam wider than every continuation there is: capped; one whose scores cannot fit: refused, one line
    wide = runner.invoke(main, ["predict", *run, "-g", "1", "--beam", str(10**20), "o menino"])
    assert wide.exit_code == 0 and len(wide.stdout.splitlines()) >= 5
    huge = runner.invoke(main, ["predict", *run, "-g", "12", "--beam", str(10**20), "o menino"])
    assert huge.exit_code == 1 and "use a smaller --beam" in huge.stderr and huge.stderr.count("\n") == 1
    marker = runner.invoke(main, ["fill", *run, "--blank", "[M.SK]", "a [MASK] caiu"])
    assert marker.exit_code == 2 and "no blank ([M.SK]) in the line" in marker.stderr


def test_tokenize_reads_several_files_as_eval_scores_them(tiny_run, workdir, runner):
    from rnncli.cli import main

    (workdir / "f1.txt").write_text("o menino", encoding="utf-8")  # no line break at the end
    (workdir / "f2.txt").write_text("acordou cedo", encoding="utf-8")
    run = ["-c", str(tiny_run)]
    tokens = runner.invoke(main, ["tokenize", *run, "f1.txt", "f2.txt"]).stdout
    assert tokens.splitlines() == ["o menino", "acordou cedo"]  # not "o menino acordou" run together
    scored = json.loads(runner.invoke(main, ["eval", *run, "f1.txt", "f2.txt", "--format", "json"]).stdout)
    assert scored["tokens"] == len(tokens.split()) + len(tokens.splitlines())  # each line's <eos> is scored


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/mem"), reason="Linux /proc")
def test_a_file_that_fails_to_read_is_named(tiny_run, runner):
    from rnncli.cli import main

    for args in (["predict", "--input"], ["score"], ["eval"], ["tokenize"], ["fill", "--input"]):
        result = runner.invoke(main, [*args, "/proc/self/mem", "-c", str(tiny_run)])
        assert result.exit_code == 2 and "/proc/self/mem: cannot read (" in result.stderr, args


@pytest.mark.slow  # subprocesses with stdin closed and stdout full
@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_closed_stdin_and_help_into_a_full_disk_are_one_line(tiny_run, workdir):
    import subprocess
    import sys

    rnn = f"{sys.executable} -m rnncli"
    for command in ("predict", "eval", "score", "tokenize", "fill"):
        result = subprocess.run(
            f"{rnn} {command} -c {tiny_run} <&-", shell=True, capture_output=True, text=True, cwd=workdir
        )
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == "rnn: error: stdin is closed: give the input as arguments or files, or through a pipe\n"
    answered = subprocess.run(f"{rnn} predict -c {tiny_run} 'o menino' <&-", shell=True, capture_output=True, text=True)
    assert answered.returncode == 0 and answered.stdout
    for args in ("--help", "--version", "predict --help"):
        full = subprocess.run(f"{rnn} {args} > /dev/full", shell=True, capture_output=True, text=True)
        assert full.returncode == 1 and full.stderr == "rnn: error: cannot write to stdout: No space left on device\n"
        closed = subprocess.run(f"{rnn} {args} >&-", shell=True, capture_output=True, text=True)
        assert closed.returncode == 1 and closed.stderr.startswith("rnn: error: stdout is closed")


def test_prompts_given_as_arguments_are_read_as_lines_of_a_file_are(tiny_run, runner):
    import os

    from rnncli.cli import main

    bad = os.fsdecode(b"o \xff menino")  # what Python makes of bytes in argv that are not utf-8
    run = ["-c", str(tiny_run)]
    for command in (["predict"], ["fill"]):
        line = bad if command == ["predict"] else bad + " ___ casa"
        strict = runner.invoke(main, [*command, *run, "a casa ___ ." if command == ["fill"] else "a casa", line])
        # the bad argument is named and left unanswered; the good one before it is answered
        assert strict.exit_code == 2 and len(strict.stdout.splitlines()) == 1, command
        assert strict.stdout.startswith("a casa"), command
        assert strict.stderr.startswith("rnn: error: argument 2 is not valid utf-8 (byte 3)"), command
        replaced = runner.invoke(main, [*command, *run, "--errors", "replace", line])
        assert replaced.exit_code == 0 and replaced.stdout, command
        assert replaced.stderr == "rnn: warning: argument 1 is not valid utf-8; its bad bytes were replaced (U+FFFD)\n"
