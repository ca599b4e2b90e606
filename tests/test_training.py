"""Training behaviour: it learns, it is deterministic, checkpoints reload and resume exactly."""

import json

import numpy as np
import pytest

from rnncli.checkpoint import load_checkpoint
from rnncli.config import load_config
from rnncli.errors import CheckpointError, ConfigError
from rnncli.infer import evaluate, load_model, next_word_probs
from rnncli.training import Trainer, run_training

from .conftest import write_config


def _weights(run_dir, which="last"):
    return load_checkpoint(run_dir, which).weights


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_tiny_model_learns_a_repetitive_corpus(tmp_path, monkeypatch, cell):
    # 7 words in a fixed cycle: a model that learned the order predicts the next word almost surely,
    # while an untrained one (uniform over 9 ids) is at perplexity ~9
    monkeypatch.chdir(tmp_path)  # run files (.rnn/) go to the temporary folder
    (tmp_path / "train.txt").write_text("um dois três quatro cinco seis sete\n" * 60, encoding="utf-8")
    cfg_path = write_config(tmp_path, model={"cell": cell}, train={"epochs": 8, "lr": 0.02})
    cfg = load_config(cfg_path)
    summary = run_training(cfg)
    assert summary["best_valid_ppl"] < 1.5, summary
    model, _, vocab, _ = load_model(cfg.checkpoint.dir)
    untrained = type(model)(model.shape)
    untrained.init_params(np.random.default_rng(0), 0.1)
    ids = vocab.encode(["um", "dois", "três", "quatro", "cinco", "seis", "sete", "<eos>"] * 5)
    assert evaluate(untrained, ids).perplexity > 5


def test_same_seed_same_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.txt").write_text("a b c d e f g\n" * 40, encoding="utf-8")
    runs = []
    for name in ("one", "two"):
        cfg = load_config(write_config(tmp_path, checkpoint={"dir": str(tmp_path / name)}, model={"dropout": 0.2}))
        run_training(cfg)
        runs.append(_weights(tmp_path / name))
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_resume_equals_an_uninterrupted_run(workdir, cell):
    # dropout on, so the RNG state must travel through the checkpoint too
    common = {"model": {"cell": cell, "dropout": 0.3}}
    full = load_config(write_config(workdir, checkpoint={"dir": str(workdir / "full")}, **common))
    run_training(full)

    split = write_config(workdir, checkpoint={"dir": str(workdir / "split")}, **common)
    run_training(load_config(split, ["train.epochs=1"]))
    run_training(load_config(split, ["train.epochs=2"]), resume=True)

    a, b = _weights(workdir / "full"), _weights(workdir / "split")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bitwise, as the README promises
    lines = (workdir / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_resume_in_the_middle_of_an_epoch(workdir):
    full = load_config(write_config(workdir, checkpoint={"dir": str(workdir / "full")}))
    summary = run_training(full)
    half = summary["tokens"] // 3
    split = write_config(workdir, checkpoint={"dir": str(workdir / "split")})
    first = run_training(load_config(split, [f"train.max_tokens={half}"]))
    assert first["tokens"] < summary["tokens"]
    run_training(load_config(split, ["train.max_tokens=0"]), resume=True)
    a, b = _weights(workdir / "full"), _weights(workdir / "split")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bitwise, as the README promises


def test_the_reloaded_model_is_the_model_that_was_trained(workdir, monkeypatch):
    # keep the trainer that run_training builds, to compare the checkpoint with the weights it held
    trainers = []
    init = Trainer.__init__

    def spy(self, *args, **kwargs):
        init(self, *args, **kwargs)
        trainers.append(self)

    monkeypatch.setattr(Trainer, "__init__", spy)
    cfg = load_config(write_config(workdir))
    run_training(cfg)
    [trainer] = trainers
    trained = trainer.model
    loaded, tok, vocab, _ = load_model(cfg.checkpoint.dir, "last")
    assert loaded.shape == trained.shape
    assert set(loaded.params) == set(trained.params)
    for name, w in trained.params.items():
        np.testing.assert_array_equal(loaded.params[name], w, err_msg=name)
    prompt = [vocab.eos_id, *vocab.encode(tok.tokenize_prompt("o menino acordou"))]
    ctx = [np.array(prompt, dtype=np.int32), np.array([vocab.eos_id], dtype=np.int32)]
    np.testing.assert_array_equal(next_word_probs(loaded, ctx), next_word_probs(trained, ctx))


def test_resume_refuses_a_different_model(workdir):
    path = write_config(workdir)
    run_training(load_config(path, ["train.epochs=1"]))
    with pytest.raises(ConfigError, match="model.hidden_size"):
        run_training(load_config(path, ["model.hidden_size=7"]), resume=True)


def test_a_damaged_checkpoint_is_refused_with_the_file_named(workdir):
    cfg = load_config(write_config(workdir))
    run_training(cfg)
    ckpt = load_checkpoint(cfg.checkpoint.dir).path
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(cfg.checkpoint.dir)


def test_no_pickle_anywhere_in_the_package():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "rnncli"
    for path in root.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import pickle" not in text and "allow_pickle=True" not in text, path


# --- learning-rate schedule -------------------------------------------------------------------


def test_lr_schedule_factors():
    from rnncli.training import lr_schedule

    assert [lr_schedule("constant", 100)(t) for t in (0, 50, 100)] == [1.0, 1.0, 1.0]
    assert [lr_schedule("linear", 100)(t) for t in (0, 25, 100)] == [1.0, 0.75, 0.0]
    cosine = lr_schedule("cosine", 100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    assert all(cosine(t) > cosine(t + 1) for t in range(100))  # strictly annealing, never below 0


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_an_annealed_run_ends_near_zero(workdir, schedule):
    sections = {"train": {"epochs": 3, "lr_schedule": schedule, "lr_decay": 1.0}}
    cfg = load_config(write_config(workdir, **sections))
    run_training(cfg)
    lrs = [json.loads(line)["lr"] for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == 3 and lrs == sorted(lrs, reverse=True), lrs
    assert lrs[0] < cfg.train.lr and 0 < lrs[-1] < 0.05 * cfg.train.lr, lrs


class _Clock:
    """A stand-in for time.perf_counter that advances by a fixed step at every reading."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_resumed_epoch_is_reported_whole(workdir, monkeypatch):
    """The row of an epoch that a stop split in two shows the epoch's whole time, not the resumed part."""
    import rnncli.training as train_module

    (workdir / "train.txt").write_text("a b c d e f g\n" * 80, encoding="utf-8")
    cfg = write_config(workdir, train={"epochs": 1})
    monkeypatch.setattr(train_module.time, "perf_counter", _Clock(100.0))  # a slow first session
    run_training(load_config(cfg, ["train.max_tokens=40"]))
    first = [json.loads(line) for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["complete"] for r in first] == [False] and first[0]["seconds"] >= 100
    monkeypatch.setattr(train_module.time, "perf_counter", _Clock(0.001))  # a fast second one
    run_training(load_config(cfg), resume=True)
    records = [json.loads(line) for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["complete"] for r in records] == [False, True]
    assert records[1]["seconds"] > first[0]["seconds"]  # the first session's part is in it
    assert records[1]["tokens_per_sec"] < records[1]["tokens"] / first[0]["seconds"]


def test_the_summary_says_how_much_of_an_epoch_max_tokens_left_trained(workdir, runner):
    from rnncli.cli import main

    (workdir / "train.txt").write_text("a b c d e f g\n" * 80, encoding="utf-8")
    cfg = str(write_config(workdir, train={"epochs": 3}))
    partial = runner.invoke(main, ["train", cfg, "-q", "--set", "train.max_tokens=40"])
    assert partial.exit_code == 0, partial.output
    assert partial.stdout.startswith("trained ") and "% of an epoch (stopped at train.max_tokens)," in partial.stdout
    one = runner.invoke(main, ["train", cfg, "-q", "--overwrite", "--set", "train.epochs=1"])
    assert one.stdout.startswith("trained 1 epoch, "), one.stdout
    summary = json.loads(runner.invoke(main, ["train", cfg, "-q", "--overwrite", "--format", "json"]).stdout)
    assert (summary["epochs"], summary["epochs_completed"], summary["partial_epoch"]) == (3, 3, 0.0)


def test_reading_the_corpus_reports_its_progress_in_bytes(workdir):
    """A large corpus is read and tokenized before the first epoch: the reporter hears how far it is
    (the CLI draws a bar from it on a terminal), up to the files' whole size, cached or not."""
    from rnncli.training import Reporter

    lines = [f"frase número {i} do corpus de treino ." for i in range(20_000)]
    (workdir / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (workdir / "valid.txt").write_text("frase número 1 .\n", encoding="utf-8")
    size = (workdir / "train.txt").stat().st_size + (workdir / "valid.txt").stat().st_size

    class Heard(Reporter):
        def __init__(self):
            self.events = []

        def reading(self, done, total):
            self.events.append((done, total))

    for run in ("first", "cached"):
        heard = Heard()
        cfg = write_config(workdir, data={"valid": "valid.txt"}, train={"epochs": 1, "max_tokens": 10})
        run_training(load_config(cfg, [f"checkpoint.dir={run}"]), reporter=heard)
        assert {total for _, total in heard.events} == {size}, run
        done = [d for d, _ in heard.events]
        assert done == sorted(done) and done[-1] == size, run
        if run == "first":
            assert len(done) >= 5  # told as it goes, not once at the end
