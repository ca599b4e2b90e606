"""Backward and two-way models (model.direction): the reversed stream, gradients, torch, resume, eval."""

import json
import math

import numpy as np
import pytest

from rnncli.checkpoint import load_checkpoint
from rnncli.cli import main
from rnncli.config import load_config
from rnncli.data import encode_files, resolve_files
from rnncli.errors import ConfigError
from rnncli.infer import evaluate, load_models
from rnncli.model import ModelShape, RNNModel
from rnncli.optim import dense
from rnncli.training import run_training
from rnncli.twoway import TwoWayModel, reverse_stream

from .conftest import write_config

EOS = 1


def test_the_reversed_stream_reads_each_sentence_backwards_and_keeps_every_token():
    a, b, c, d, e = 2, 3, 4, 5, 6
    ids = np.array([a, b, c, EOS, d, e, EOS])
    assert reverse_stream(ids, EOS).tolist() == [e, d, EOS, c, b, a, EOS]
    assert reverse_stream(reverse_stream(ids, EOS), EOS).tolist() == ids.tolist()  # its own inverse
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 8, size=rng.integers(1, 40))
        r = reverse_stream(x, EOS)
        assert sorted(r.tolist()) == sorted(x.tolist()) and len(r) == len(x)


def _pair(cell="lstm", layers=2, dropout=0.0):
    shape = ModelShape(vocab_size=9, cell=cell, embedding_size=4, hidden_size=5, layers=layers, dropout=dropout)
    pair = TwoWayModel(RNNModel(shape, dtype=np.float64), RNNModel(shape, dtype=np.float64))
    pair.init_params(np.random.default_rng(0), 0.5)
    return pair


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_check_of_the_two_way_pair_covers_the_backward_network(cell):
    pair = _pair(cell, dropout=0.3)
    rng = np.random.default_rng(1)
    T, B = 4, 3
    ids, targets = rng.integers(0, 9, size=(T, B, 2)), rng.integers(0, 9, size=(T, B, 2))
    state = [tuple(rng.normal(0, 0.5, size=a.shape) for a in layer) for layer in pair.initial_state(B)]
    masks = pair.dropout_masks(np.random.default_rng(2), T, B)

    def total_loss():  # the loss whose gradient each network gets: the sum of the two directions'
        loss_f = pair.forward_model.forward(ids[..., 0], targets[..., 0], state[:2], masks=masks[:3])[0]
        loss_b = pair.backward_model.forward(ids[..., 1], targets[..., 1], state[2:], masks=masks[3:])[0]
        return loss_f + loss_b

    loss, _, cache = pair.forward(ids, targets, state, masks=masks)
    assert loss == pytest.approx(total_loss() / 2)
    ready = {}
    grads = pair.backward(cache, on_ready=ready.update)
    assert set(grads) == set(pair.params) == set(ready)
    assert any(k.startswith("backward.rnn.") for k in grads)
    eps = 1e-5
    for name, p in pair.params.items():
        flat, num = p.reshape(-1), np.zeros(p.size)
        for i in range(p.size):
            old = flat[i]
            flat[i] = old + eps
            up = total_loss()
            flat[i] = old - eps
            num[i] = (up - total_loss()) / (2 * eps)
            flat[i] = old
        g = dense(grads[name]).reshape(-1)
        rel = np.linalg.norm(g - num) / max(np.linalg.norm(g) + np.linalg.norm(num), 1e-12)
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"


def _both_run(workdir, direction, **extra):
    cfg = load_config(write_config(workdir, model={"cell": "lstm", "direction": direction, "dropout": 0.2}, **extra))
    return cfg, run_training(cfg)


def test_a_backward_checkpoint_loads_into_torch_and_scores_the_reversed_text_the_same(workdir):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from .test_torch_load import torch_perplexity

    cfg, _ = _both_run(workdir, "both")
    models = load_models(cfg.checkpoint.dir)
    files = resolve_files(str(workdir / "train.txt"), "t")
    ids = encode_files(files, models.tokenizer, models.vocab, "utf-8", "strict")
    ckpt_dir = load_checkpoint(cfg.checkpoint.dir).path
    weights = load_file(str(ckpt_dir / "model.safetensors"))
    # the README's loading lines: the backward network is the tensors under "backward."
    backward = {k[len("backward.") :]: v for k, v in weights.items() if k.startswith("backward.")}
    assert set(backward) == {k for k in weights if not k.startswith("backward.")}
    alone = workdir / "backward_alone"
    alone.mkdir()
    from safetensors.torch import save_file

    save_file(backward, str(alone / "model.safetensors"))
    (alone / "checkpoint.json").write_text((ckpt_dir / "checkpoint.json").read_text(encoding="utf-8"))
    reversed_ids = reverse_stream(ids, models.vocab.eos_id)
    ours = evaluate(models.backward, reversed_ids, start_id=models.vocab.eos_id).perplexity
    theirs = torch_perplexity(alone, reversed_ids, models.vocab.eos_id)
    assert abs(ours - theirs) / theirs < 1e-3, (ours, theirs)
    assert torch.is_tensor(weights["backward.encoder.weight"])
    # and the two networks differ: the backward one did learn something of its own
    assert not np.array_equal(models.forward.params["rnn.weight_hh_l0"], models.backward.params["rnn.weight_hh_l0"])


@pytest.mark.parametrize("direction", ["backward", "both"])
def test_resume_equals_an_uninterrupted_run(workdir, direction):
    model = {"cell": "gru", "direction": direction, "dropout": 0.3}
    full = load_config(write_config(workdir, model=model, checkpoint={"dir": str(workdir / "full")}))
    summary = run_training(full)
    split = write_config(workdir, model=model, checkpoint={"dir": str(workdir / "split")})
    run_training(load_config(split, [f"train.max_tokens={summary['tokens'] // 3}"]))  # stops mid-epoch
    run_training(load_config(split, ["train.max_tokens=0"]), resume=True)
    a, b = load_checkpoint(workdir / "full", "last").weights, load_checkpoint(workdir / "split", "last").weights
    assert set(a) == set(b) and (direction == "backward") != any(k.startswith("backward.") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_run_cannot_resume_with_another_direction(workdir):
    path = write_config(workdir, train={"epochs": 1})
    run_training(load_config(path))
    same_dir = f"checkpoint.dir={workdir / 'run'}"
    with pytest.raises(ConfigError, match="model.direction is 'backward' in the config but 'forward'"):
        run_training(load_config(path, ["model.direction=backward", "train.epochs=2", same_dir]), resume=True)


def test_another_direction_on_the_command_line_trains_into_a_folder_of_its_own(workdir, runner):
    path = str(write_config(workdir, train={"epochs": 1}))
    assert runner.invoke(main, ["train", path, "-q"]).exit_code == 0
    forward = {p: p.read_bytes() for p in (workdir / "run").rglob("*") if p.is_file()}
    for direction in ("backward", "both"):
        result = runner.invoke(main, ["train", path, "-q", "--set", f"model.direction={direction}", "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["run_dir"].endswith(f"run-{direction}")
    assert {p: p.read_bytes() for p in (workdir / "run").rglob("*") if p.is_file()} == forward  # untouched
    again = runner.invoke(main, ["train", path, "-q", "--set", "model.direction=both", "--resume", "--format", "json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["run_dir"].endswith("run-both")  # resume finds it
    fill = runner.invoke(main, ["fill", "--format", "json", "o menino ___ sentindo-se indisposto"])  # the last run
    assert fill.exit_code == 0 and json.loads(fill.stdout)["fills"], fill.output


def test_eval_reports_each_direction_over_the_same_tokens_and_predict_refuses_a_backward_model(workdir, runner):
    for direction in ("forward", "backward", "both"):
        cfg = load_config(write_config(workdir, model={"direction": direction}, checkpoint={"dir": direction}))
        run_training(cfg)
    out = {}
    for direction in ("forward", "backward", "both"):
        result = runner.invoke(main, ["eval", "train.txt", "-c", direction, "--format", "json"])
        assert result.exit_code == 0, result.stderr
        out[direction] = json.loads(result.stdout)
    assert out["backward"]["direction"] == "backward" and out["both"]["direction"] == "forward"
    assert out["forward"]["tokens"] == out["backward"]["tokens"] == out["both"]["backward"]["tokens"]
    # the backward figures are the backward network's own, on the reversed text
    models = load_models("backward")
    ids = encode_files(resolve_files("train.txt", "t"), models.tokenizer, models.vocab, "utf-8", "strict")
    expected = evaluate(models.backward, reverse_stream(ids, 1), start_id=1).loss
    assert out["backward"]["loss"] == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(out["both"]["backward"]["perplexity"])
    refused = runner.invoke(main, ["predict", "o menino", "-c", "backward"])
    assert refused.exit_code == 2 and "holds a backward (right-to-left) model" in refused.stderr
    assert runner.invoke(main, ["predict", "o menino", "-c", "both"]).exit_code == 0
    bad = runner.invoke(main, ["train", "run.yaml", "--set", "model.direction=sideways", "--overwrite"])
    assert bad.exit_code == 2 and bad.stderr.startswith("rnn: error: model.direction")


def test_a_backward_model_learns_the_word_before(workdir):
    from rnncli.generate import next_log_probs

    cfg = load_config(write_config(workdir, model={"direction": "backward"}, train={"epochs": 12}))
    run_training(cfg)
    models = load_models(cfg.checkpoint.dir)
    vocab, tok = models.vocab, models.tokenizer
    after = tok.tokenize("indisposto e ficou em casa.")  # read right to left: what came before "indisposto"?
    context = np.array([vocab.eos_id, *vocab.encode(after[::-1])], dtype=np.int32)
    logp = next_log_probs(models.backward, [context], dtype=np.float64)[0]
    assert vocab.itos[int(np.argmax(logp))] == "sentindo-se"
