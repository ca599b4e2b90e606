"""One owner per decision (issue 19): each rule has one function, and every caller uses it.

The model shape from a config, perplexity, the rank of a word (ties to the lower id), the way a
text file is opened, the ids that are never proposed, and the `.rnn/last_run` pointer (the CLI's).
"""

import gzip
import json
import math
import os
import signal

import numpy as np
import pytest

from rnncli.cli import main
from rnncli.config import Config, ModelConfig, load_config
from rnncli.data import open_binary
from rnncli.errors import DataError
from rnncli.fill import fill_accuracy
from rnncli.generate import mask_out_, top_k_rows
from rnncli.infer import evaluate, load_model
from rnncli.metrics import count_above, perplexity, ranks
from rnncli.model import ModelShape, RNNModel
from rnncli.training import run_training

from .conftest import write_config

# --- the model shape --------------------------------------------------------------------------


def test_the_shape_defaults_are_the_configs():
    assert ModelShape.from_config(Config(), 7) == ModelShape(vocab_size=7)
    m = ModelConfig(cell="gru", softmax="adaptive", cutoffs=[3, 5], div_value=2.0, hidden_size=9)
    assert ModelShape.from_config(m, 7) == ModelShape(
        7, "gru", hidden_size=9, softmax="adaptive", cutoffs=(3, 5), div_value=2.0
    )


def test_a_checkpoint_without_the_newer_model_keys_loads_with_the_config_defaults(workdir, trained_copy):
    cfg = load_config(write_config(workdir, train={"epochs": 1}))
    trained_copy(train={"epochs": 1})  # what run_training(cfg) leaves
    model, _, vocab, ckpt = load_model(cfg.checkpoint.dir)
    meta_path = ckpt.path / "checkpoint.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    for key in ("softmax", "cutoffs", "div_value", "direction", "init_range"):  # written by later versions
        del meta["config"]["model"][key]
    meta["config"]["model"]["from_the_future"] = 1  # a key this version does not know is left out
    del meta["meta_sha256"]  # as old checkpoints have it: no checksum of checkpoint.json itself
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    old, _, _, _ = load_model(ckpt.path)
    assert old.shape == model.shape == ModelShape.from_config(cfg, len(vocab))


# --- perplexity ---------------------------------------------------------------------------------


def test_perplexity_is_one_formula():
    assert perplexity(2 * math.log(3), 2) == pytest.approx(3.0)
    assert perplexity(math.log(5)) == pytest.approx(5.0)  # a mean loss
    assert perplexity(0.0, 0) is None  # nothing scored (an empty line)
    assert perplexity(700.0) == math.inf and perplexity(1e6, 2) == math.inf  # exp would overflow
    assert perplexity(float("nan")) == math.inf


def test_score_eval_and_training_report_the_same_perplexity(workdir, runner):
    cfg = load_config(write_config(workdir, train={"epochs": 1}))
    run_training(cfg)
    (workdir / "one.txt").write_text("O menino acordou.\n\n", encoding="utf-8")
    lines = runner.invoke(main, ["score", "-c", str(cfg.checkpoint.dir), "one.txt", "--format", "json"]).stdout
    first, empty = [json.loads(line) for line in lines.splitlines()]
    assert first["perplexity"] == perplexity(-first["logprob"], first["tokens"])
    assert empty["perplexity"] is None
    record = json.loads((workdir / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["valid_ppl"] == perplexity(record["valid_loss"])


# --- the rank of a word: ties go to the lower id ---------------------------------------------


def _tied_model() -> RNNModel:
    """Four words whose scores ignore the input: ids 1 and 2 tie for first place, exactly."""
    model = RNNModel(ModelShape(vocab_size=4, embedding_size=3, hidden_size=3))
    model.params["decoder.bias"][...] = [0.0, 1.0, 1.0, -1.0]
    return model


def test_ranks_put_ties_at_the_lower_id_as_predict_lists_them():
    logp = np.log(np.array([[0.1, 0.4, 0.4, 0.1], [0.25, 0.25, 0.25, 0.25]]))
    assert ranks(logp, np.array([2, 3])).tolist() == [1, 3]
    assert ranks(logp, np.array([1, 0])).tolist() == [0, 0]
    listed = [i for i, _ in top_k_rows(logp[:1], 4)[0]]
    assert [listed.index(w) for w in range(4)] == ranks(np.repeat(logp[:1], 4, axis=0), np.arange(4)).tolist()
    # among some columns only (completion's matches), the target not among them
    assert count_above(np.array([0.4, 0.4, 0.1]), 0.4, 2, np.array([1, 3, 0])) == 1


def test_eval_and_eval_fill_agree_on_a_tie():
    model, eos = _tied_model(), 0
    ids = np.array([2, 1], dtype=np.int32)  # 2 ties with 1 at the top, and 1 is the lower id
    fill = fill_accuracy(model, None, ids, eos)
    assert fill["next_word_top1"] == 0.5  # 1 is first, 2 second
    result = evaluate(model, ids, start_id=eos)
    assert result.top1 / result.tokens == fill["next_word_top1"]


def test_eval_fill_ranks_a_tie_below_the_lower_id():
    fill = fill_accuracy(_tied_model(), None, np.array([2, 1, 2], dtype=np.int32), 0)
    assert fill["next_word_top1"] == pytest.approx(1 / 3) and fill["next_word_top5"] == 1.0


# --- the ids never proposed -------------------------------------------------------------------


def test_mask_out_gives_excluded_ids_no_chance():
    scores = np.zeros((2, 4))
    assert mask_out_(scores, (0, 3)) is scores
    assert np.isneginf(scores[:, [0, 3]]).all() and (scores[:, [1, 2]] == 0).all()
    assert (mask_out_(np.ones((1, 3)), ()) == 1).all()


# --- opening a text file ----------------------------------------------------------------------


def test_open_binary_gunzips_by_content_and_names_the_file(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"ol\xc3\xa1\n")
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"ol\xc3\xa1\n"))
    (tmp_path / "gz.txt").write_bytes(gzip.compress(b"ol\xc3\xa1\n"))  # the content decides, not the name
    for name in ("a.txt", "a.txt.gz", "gz.txt"):
        with open_binary(tmp_path / name) as (raw, stream):
            assert stream.read() == b"ol\xc3\xa1\n"
        assert raw.closed
    with pytest.raises(DataError, match="^--input x: is a folder"), open_binary(tmp_path, "--input x"):
        pass
    with pytest.raises(DataError, match="missing.txt: cannot read"), open_binary(tmp_path / "missing.txt"):
        pass


# --- the last-run pointer: the CLI's ------------------------------------------------------------


def test_run_training_writes_no_last_run_pointer(workdir):
    run_training(load_config(write_config(workdir, train={"epochs": 1})))
    assert (workdir / "run" / "index.json").exists()
    assert not (workdir / ".rnn" / "last_run").exists()


def test_rnn_train_points_at_the_run_from_its_first_checkpoint(workdir, runner, monkeypatch):
    from rnncli.cli import train as cli

    seen = []
    original = cli._BarReporter.epoch_end

    def epoch_end(self, record):  # heard right after the epoch's checkpoint is written
        seen.append((workdir / ".rnn" / "last_run").exists())
        original(self, record)

    monkeypatch.setattr(cli._BarReporter, "epoch_end", epoch_end)
    result = runner.invoke(main, ["train", str(write_config(workdir)), "-q"])
    assert result.exit_code == 0, result.output
    assert seen == [True, True]
    assert (workdir / ".rnn" / "last_run").read_text(encoding="utf-8") == str((workdir / "run").resolve())


def test_an_interrupted_rnn_train_points_at_its_checkpoint_and_a_failed_one_does_not(workdir, runner, monkeypatch):
    from rnncli.cli import train as cli

    bad = runner.invoke(main, ["train", str(write_config(workdir, data={"train": "missing.txt"})), "-q"])
    assert bad.exit_code != 0 and not (workdir / ".rnn" / "last_run").exists()

    def window(self, tokens, loss, tokens_per_sec):
        os.kill(os.getpid(), signal.SIGINT)  # stop after the first window, mid-epoch

    monkeypatch.setattr(cli._BarReporter, "window", window)
    result = runner.invoke(main, ["train", str(write_config(workdir)), "-q"])
    assert result.exit_code == 130, result.output
    assert (workdir / ".rnn" / "last_run").read_text(encoding="utf-8") == str((workdir / "run").resolve())


# --- the training session ---------------------------------------------------------------------


def test_a_session_sets_its_state_in_the_constructor_and_says_how_each_epoch_ended(workdir, monkeypatch):
    from rnncli import training as train

    before, after, ends = [], [], []
    loop, end_epoch = train._Run.loop, train._Run.end_epoch

    def watched_loop(self):
        before.append(set(vars(self)))
        loop(self)
        after.append(set(vars(self)))

    def watched_end(self):
        ends.append(end_epoch(self))
        return ends[-1]

    monkeypatch.setattr(train._Run, "loop", watched_loop)
    monkeypatch.setattr(train._Run, "end_epoch", watched_end)
    run_training(load_config(write_config(workdir)))
    assert before == after and before[0] >= {"good", "last_save", "epoch_start", "epoch_before", "signum"}
    assert [e.record["epoch"] for e in ends] == [1, 2] and not any(e.diverged for e in ends)
    assert all(e.valid_loss == e.record["valid_loss"] for e in ends)
