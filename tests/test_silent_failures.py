"""Issue 13, "no silent failure": a run's summary, edited checkpoints, partial scoring, full disks."""

import json
import math

import pytest

from rnncli.config import load_config
from rnncli.train import run_training

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


def test_an_edited_checkpoint_json_is_refused_with_the_file_named(workdir, runner):
    from rnncli.checkpoint import load_checkpoint
    from rnncli.cli import main

    cfg = load_config(write_config(workdir, train={"epochs": 1}))
    run_training(cfg)
    meta_path = load_checkpoint(cfg.checkpoint.dir).path / "checkpoint.json"
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
