"""Faults inside a training run: interruption, divergence, full disk, damaged checkpoints,
periodic saves and their pruning, memory, and the tokenized-corpus cache."""

import errno
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from rnncli import checkpoint as ckpt_mod
from rnncli import data as data_mod
from rnncli.checkpoint import load_checkpoint, read_index
from rnncli.cli import main
from rnncli.config import load_config
from rnncli.errors import CheckpointError, DataError, RnnError
from rnncli.infer import load_model
from rnncli.model import RNNModel
from rnncli.tokenizer import Tokenizer
from rnncli.training import Reporter, TrainingInterrupted, run_training

from .conftest import TINY_TEXT, write_config


def _weights(run_dir, which="last"):
    return load_checkpoint(run_dir, which).weights


def _ckpt_folders(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("ckpt-"))


class _SignalAt(Reporter):
    """Sends the process a signal from inside the training loop, after window `at`."""

    def __init__(self, at: int, signum: int = signal.SIGINT):
        self.at, self.signum, self.n = at, signum, 0
        self.messages: list[str] = []

    def window(self, tokens, loss, tokens_per_sec):
        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), self.signum)

    def message(self, text):
        self.messages.append(text)


# --- interruption -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signum, schedule", [(signal.SIGINT, "constant"), (signal.SIGTERM, "constant"), (signal.SIGINT, "cosine")]
)
def test_a_signal_mid_epoch_saves_and_resume_is_bitwise_equal(workdir, signum, schedule):
    # an annealed rate depends only on the tokens trained, so it resumes exactly too
    sections = {"model": {"cell": "lstm", "dropout": 0.3}, "train": {"lr_schedule": schedule}}
    run_training(load_config(write_config(workdir, checkpoint={"dir": str(workdir / "full")}, **sections)))
    cfg = load_config(write_config(workdir, **sections))
    with pytest.raises(TrainingInterrupted) as info:
        run_training(cfg, reporter=_SignalAt(17, signum))
    assert info.value.exit_code == 128 + signum
    assert info.value.checkpoint.name.endswith("-s00000017")  # the window in progress was finished, then saved
    run_training(cfg, resume=True)
    a, b = _weights(workdir / "full"), _weights(workdir / "run")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_signal_handlers_are_restored(workdir):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run_training(load_config(write_config(workdir, train={"epochs": 1})))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# --- divergence -------------------------------------------------------------------------------


def test_a_nan_loss_rolls_back_lowers_lr_and_goes_on(workdir, monkeypatch):
    forward = RNNModel.forward
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        loss, state, cache = forward(self, *args, **kwargs)
        return (float("nan") if calls["n"] == 30 else loss), state, cache

    monkeypatch.setattr(RNNModel, "forward", flaky)
    reporter = _SignalAt(at=-1)
    cfg = load_config(write_config(workdir, checkpoint={"every_steps": 10}))
    summary = run_training(cfg, reporter=reporter)
    assert summary["lr"] == pytest.approx(0.01 * 0.5)
    [message] = [m for m in reporter.messages if "rolled back" in m]
    assert "step 30" in message and "rolled back to step 20" in message and "lr lowered to 0.005" in message
    for name in _ckpt_folders(workdir / "run"):
        for key, w in load_checkpoint(workdir / "run" / name).weights.items():
            assert np.all(np.isfinite(w)), (name, key)


def test_divergence_that_persists_stops_with_a_clear_message_and_no_nan_checkpoint(workdir, monkeypatch):
    forward = RNNModel.forward
    calls = {"n": 0}

    def broken_after_20(self, *args, **kwargs):
        calls["n"] += 1
        loss, state, cache = forward(self, *args, **kwargs)
        return (float("inf") if calls["n"] > 20 else loss), state, cache

    monkeypatch.setattr(RNNModel, "forward", broken_after_20)
    path = write_config(workdir, train={"divergence_retries": 2}, checkpoint={"every_steps": 15})
    result = CliRunner().invoke(main, ["train", str(path), "-q"])
    assert result.exit_code == 1
    *warnings, line = result.stderr.strip().splitlines()
    assert len(warnings) == 2 and all("rolled back to step 15" in w for w in warnings)
    assert line.startswith("rnn: error: training diverged at step 16 (loss inf")
    assert "after 2 roll-backs" in line and "ckpt-e0001-s00000015" in line
    assert _ckpt_folders(workdir / "run") == ["ckpt-e0001-s00000015"]


def test_a_validation_that_is_not_finite_rolls_back_lowering_the_rate_each_time_then_stops(workdir):
    # the default model at lr 1e30: every step's loss and gradient stay finite (clipped), but the weights
    # reach ~1e29 and the validation loss is NaN; that is a divergence too, and no such model is saved
    config = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    args = ["--set", "train.lr=1e30", "--set", "train.epochs=1", "--set", f"checkpoint.dir={workdir / 'run'}"]
    result = CliRunner().invoke(main, ["train", str(config), "-q", "--format", "json", *args])
    assert result.exit_code == 1 and result.stdout == ""
    *rolled, line = result.stderr.strip().splitlines()
    assert [r.split("lr lowered to ")[1].split(" ")[0] for r in rolled] == ["5e+29", "2.5e+29", "1.25e+29"]
    assert all("at the validation of epoch 1 (validation loss nan)" in r for r in rolled)
    assert line.startswith("rnn: error: training diverged at the validation of epoch 1") and "no checkpoint" in line
    assert not (workdir / "run").exists()


def test_weights_so_large_that_the_model_predicts_nan_are_refused(one_checkpoint, monkeypatch):
    weights_path = one_checkpoint / "model.safetensors"
    weights = {k: np.where(v < 0, -3e38, 3e38).astype(v.dtype) for k, v in load_file(weights_path).items()}
    assert all(np.isfinite(w).all() for w in weights.values())  # finite: the load-time check passes them
    save_file(weights, weights_path)
    _rehash(one_checkpoint, "model.safetensors")
    for args in (["predict", "--format", "json", "a casa"], ["eval", "-"], ["fill", "o ___ acordou"]):
        result = CliRunner().invoke(main, [args[0], "-c", str(one_checkpoint), *args[1:]], input="a casa\n")
        assert result.exit_code == 1 and result.stdout == "", args
        assert "the model predicts NaN: its weights are too large" in result.stderr and "Traceback" not in result.output
    # and should a model pass that check but predict NaN on the text, eval names it instead of printing accuracies
    from rnncli import infer

    monkeypatch.setattr(infer, "_check_output", lambda model, ckpt: None)
    result = CliRunner().invoke(main, ["eval", "-c", str(one_checkpoint), "-"], input="a casa\n")
    assert result.exit_code == 1 and "the forward model predicts NaN on this text" in result.stderr


def test_save_refuses_non_finite_weights(tmp_path):
    with pytest.raises(CheckpointError, match="NaN"):
        ckpt_mod.save_checkpoint(tmp_path, "ckpt-x", {"w": np.array([np.nan])}, {}, {}, {}, is_best=True)
    assert not list(tmp_path.iterdir())


# --- full disk, unwritable folder ---------------------------------------------------------------


def test_disk_full_keeps_the_previous_checkpoint_and_exits_1(workdir, monkeypatch):
    path = write_config(workdir, train={"epochs": 3})
    runner = CliRunner()
    assert runner.invoke(main, ["train", str(path), "-q", "--set", "train.epochs=1"]).exit_code == 0
    run = workdir / "run"
    index_before = (run / "index.json").read_bytes()
    folders_before = _ckpt_folders(run)
    real = ckpt_mod._write_bytes
    writes = {"n": 0}

    def full_disk(p, data):
        writes["n"] += 1
        if writes["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(p, data)

    monkeypatch.setattr(ckpt_mod, "_write_bytes", full_disk)
    result = runner.invoke(main, ["train", str(path), "-q", "--resume"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"rnn: error: cannot write checkpoint in {run}: No space left on device (")
    assert result.stderr.strip().endswith(
        f"; the previous checkpoint {folders_before[-1]} is kept: free some space, then continue with --resume"
    )
    assert result.stderr.count("\n") == 1
    assert (run / "index.json").read_bytes() == index_before
    assert _ckpt_folders(run) == folders_before
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]
    load_model(run)  # still loads


def test_unwritable_checkpoint_folder_fails_before_training(workdir):
    path = write_config(workdir, checkpoint={"dir": str(workdir / "train.txt" / "run")})  # under a file
    result = CliRunner().invoke(main, ["train", str(path), "-q"])
    assert result.exit_code == 1
    assert result.stderr.startswith("rnn: error: checkpoint.dir: cannot write in ")
    assert "Not a directory" in result.stderr
    assert "epoch" not in result.stderr


# --- periodic checkpoints and pruning ------------------------------------------------------------


def test_every_steps_keeps_the_last_n_and_the_best(workdir, monkeypatch):
    cfg = load_config(write_config(workdir, train={"epochs": 3}, checkpoint={"every_steps": 7, "keep": 3}))
    saved = []
    real = ckpt_mod.save_checkpoint

    def spy(run_dir, name, *args, **kwargs):
        saved.append(name)
        return real(run_dir, name, *args, **kwargs)

    monkeypatch.setattr("rnncli.runstore.save_checkpoint", spy)
    summary = run_training(cfg)
    per_epoch = summary["steps"] // 3
    steps = [int(n.split("-s")[1]) for n in saved]
    epoch_ends = [per_epoch * k for k in (1, 2, 3)]
    periodic = [s for s in range(7, summary["steps"] + 1, 7) if s not in epoch_ends]
    assert sorted(steps) == sorted(periodic + epoch_ends)
    index = read_index(workdir / "run")
    assert index["recent"] == saved[-3:]
    assert set(_ckpt_folders(workdir / "run")) == set(saved[-3:]) | {index["best"]}


def test_keep_best_false_keeps_only_the_recent(workdir):
    cfg = load_config(write_config(workdir, train={"epochs": 3}, checkpoint={"keep": 1, "keep_best": False}))
    run_training(cfg)
    assert _ckpt_folders(workdir / "run") == [read_index(workdir / "run")["last"]]


def test_every_minutes_saves_during_an_epoch(workdir, monkeypatch):
    cfg = load_config(write_config(workdir, train={"epochs": 1}, checkpoint={"every_minutes": 1e-9}))
    saved = []
    real = ckpt_mod.save_checkpoint
    monkeypatch.setattr("rnncli.runstore.save_checkpoint", lambda *a, **k: saved.append(a[1]) or real(*a, **k))
    summary = run_training(cfg)
    assert len(saved) == summary["steps"]  # each window but the last, then the epoch end


# --- integrity ----------------------------------------------------------------------------------


@pytest.fixture
def one_checkpoint(trained_copy):
    """The checkpoint of a 1-epoch run in workdir/run, as run_training leaves it (a copy of the session's)."""
    return load_checkpoint(trained_copy(train={"epochs": 1})).path


def _rehash(ckpt: Path, name: str) -> None:
    """Make an edited file pass the checksum, to reach the deeper checks."""
    meta_path = ckpt / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["files"][name] = ckpt_mod._sha256(ckpt / name)
    meta[ckpt_mod.META_DIGEST] = ckpt_mod._meta_digest(meta)  # and checkpoint.json's own checksum
    meta_path.write_text(json.dumps(meta))


def test_checkpoint_records_versions_and_checksums(one_checkpoint):
    meta = json.loads((one_checkpoint / "checkpoint.json").read_text())
    assert set(meta["versions"]) >= {"rnn", "numpy", "python"}
    assert set(meta["files"]) == {"model.safetensors", "trainer.safetensors", "vocab.json"}
    assert meta["format_version"] == ckpt_mod.FORMAT_VERSION


def test_an_edited_vocab_is_refused(one_checkpoint):
    vocab = one_checkpoint / "vocab.json"
    vocab.write_text(vocab.read_text().replace("menino", "menina"))
    with pytest.raises(CheckpointError, match="vocab.json: checksum mismatch"):
        load_model(one_checkpoint)


def test_a_vocabulary_of_the_wrong_size_is_refused(one_checkpoint):
    vocab_path = one_checkpoint / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    vocab["itos"].append("extra")
    vocab["counts"].append(1)
    vocab_path.write_text(json.dumps(vocab))
    _rehash(one_checkpoint, "vocab.json")
    with pytest.raises(CheckpointError, match=r"vocab.json: \d+ words, but checkpoint.json says"):
        load_model(one_checkpoint)


def test_weights_of_the_wrong_shape_are_refused(one_checkpoint):
    weights_path = one_checkpoint / "model.safetensors"
    weights = load_file(weights_path)
    weights["encoder.weight"] = weights["encoder.weight"][:, :-1].copy()
    save_file(weights, weights_path)
    _rehash(one_checkpoint, "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors: tensor encoder.weight has shape"):
        load_model(one_checkpoint)


def test_an_unknown_format_version_is_refused_through_the_cli(one_checkpoint):
    meta_path = one_checkpoint / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    result = CliRunner().invoke(main, ["predict", "-c", str(one_checkpoint), "olá"])
    assert result.exit_code == 1
    assert "checkpoint.json: checkpoint format 99 is not supported" in result.stderr


def test_a_truncated_trainer_file_stops_resume(workdir, one_checkpoint):
    trainer = one_checkpoint / "trainer.safetensors"
    trainer.write_bytes(trainer.read_bytes()[:20])
    result = CliRunner().invoke(main, ["train", str(workdir / "run.yaml"), "--resume", "--set", "train.epochs=2"])
    assert result.exit_code == 1
    assert "trainer.safetensors: checksum mismatch" in result.stderr


# --- memory ----------------------------------------------------------------------------------


def _fresh_bytes(cache, reused: np.ndarray) -> int:
    """Bytes of the arrays in a forward cache that each window allocates anew (what a leak would keep).

    Views count once, by the array that owns their memory; the output layer's logits buffer is
    reused from window to window, so keeping it would not grow memory, and it is left out.
    """
    owners: dict[int, np.ndarray] = {}
    stack = [cache]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            while isinstance(item.base, np.ndarray):
                item = item.base
            if not np.shares_memory(item, reused):
                owners[id(item)] = item
    return sum(a.nbytes for a in owners.values())


def test_memory_is_in_the_metrics_and_flat_across_epochs(workdir):
    # sized so that keeping one window's forward cache per step (the classic leak: a list of
    # caches, a cache held by the model) adds several times the RSS noise between the epochs
    (workdir / "train.txt").write_text(TINY_TEXT * 60, encoding="utf-8")
    model_cfg = {"cell": "lstm", "embedding_size": 64, "hidden_size": 128}
    train_cfg = {"epochs": 6, "batch_size": 16, "bptt": 20}
    cfg = load_config(write_config(workdir, model=model_cfg, train=train_cfg))
    run_training(cfg)
    records = [json.loads(line) for line in (workdir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["peak_rss_mb"] > 0 for r in records)

    model, _, _, _ = load_model(cfg.checkpoint.dir)
    T, B = cfg.train.bptt, cfg.train.batch_size
    ids = np.zeros((T, B), dtype=np.int32)
    workspace: dict = {}  # as the training step owns it: the output layer's logits, reused by every window
    _, _, cache = model.forward(ids, ids, model.initial_state(B), workspace=workspace)
    window_mb = _fresh_bytes(cache, workspace[model.output]) / 2**20
    steps = records[-1]["step"] - records[1]["step"]  # between the second epoch's end and the last's
    leak_mb = window_mb * steps
    assert leak_mb / 4 >= 8, (window_mb, steps)  # else the test could not tell a leak from noise
    rss = [r["rss_mb"] for r in records]
    assert rss[-1] - rss[1] < leak_mb / 4, (rss, f"one window's cache per step would add {leak_mb:.0f} MB")


# --- tokenized-corpus cache ----------------------------------------------------------------------


def _no_tokenizing(*args, **kwargs):
    raise AssertionError("tokenized again")


def test_the_cache_is_used_and_invalidated_by_content_or_settings(workdir, monkeypatch):
    cfg = load_config(write_config(workdir, data={"cache_dir": str(workdir / "cache")}))
    tok = Tokenizer()
    first = data_mod.build_corpus(cfg.data, tok, 1, 0)
    assert len(list((workdir / "cache").glob("*.safetensors"))) == 1
    monkeypatch.setattr(data_mod, "iter_file_tokens", _no_tokenizing)
    again = data_mod.build_corpus(cfg.data, tok, 1, 0)
    np.testing.assert_array_equal(first.train, again.train)
    assert first.vocab == again.vocab
    with pytest.raises(AssertionError, match="tokenized again"):  # other settings: a miss
        data_mod.build_corpus(cfg.data, Tokenizer(lowercase=False), 1, 0)
    with (workdir / "train.txt").open("a", encoding="utf-8") as f:
        f.write("uma linha nova.\n")
    with pytest.raises(AssertionError, match="tokenized again"):  # other content: a miss
        data_mod.build_corpus(cfg.data, tok, 1, 0)


def test_a_damaged_cache_entry_is_ignored(workdir):
    cfg = load_config(write_config(workdir, data={"cache_dir": str(workdir / "cache")}))
    first = data_mod.build_corpus(cfg.data, Tokenizer(), 1, 0)
    [entry] = (workdir / "cache").glob("*.safetensors")
    entry.write_bytes(b"garbage")
    again = data_mod.build_corpus(cfg.data, Tokenizer(), 1, 0)
    np.testing.assert_array_equal(first.train, again.train)


def test_a_long_line_is_read_in_pieces_cut_at_spaces(tmp_path, monkeypatch):
    words = [f"palavra{i}" for i in range(3000)]
    path = tmp_path / "long.txt"
    path.write_text(" ".join(words) + "\nfim\n", encoding="utf-8")
    monkeypatch.setattr(data_mod, "MAX_LINE_BYTES", 256)
    pieces = list(data_mod.read_lines(path))
    assert len(pieces) > 50 and max(len(p) for p in pieces) <= 2 * 256
    tok = Tokenizer(mode="whitespace", line_eos=False)
    assert list(data_mod.iter_file_tokens([path], tok, "utf-8", "strict")) == words + ["fim"]


def test_a_long_run_without_spaces_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "blob.txt"
    path.write_text("ok\n" + "x" * 5000 + "\n", encoding="utf-8")
    monkeypatch.setattr(data_mod, "MAX_LINE_BYTES", 1024)
    with pytest.raises(DataError, match=r"blob.txt: more than .* without a space or line break \(from byte offset 3\)"):
        list(data_mod.read_lines(path))


def test_rnn_error_is_the_base_of_training_interrupted():
    assert issubclass(TrainingInterrupted, RnnError)
