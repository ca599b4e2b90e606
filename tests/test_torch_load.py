"""A checkpoint written by `rnn train` loads into torch.nn modules, and PyTorch scores text the same."""

import json
import math

import numpy as np
import pytest

from rnncli.checkpoint import load_checkpoint
from rnncli.config import load_config
from rnncli.data import encode_files, resolve_files
from rnncli.infer import evaluate, load_model
from rnncli.training import run_training

from .conftest import write_config

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402  (needs torch)


def torch_perplexity(ckpt_dir, ids: np.ndarray, eos_id: int) -> float:
    """What the README shows: build torch.nn modules, load the tensors by name, score the ids."""
    w = load_file(f"{ckpt_dir}/model.safetensors")
    with open(f"{ckpt_dir}/checkpoint.json", encoding="utf-8") as f:
        m = json.load(f)["config"]["model"]
    V = w["encoder.weight"].shape[0]
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[m["cell"]]
    kw = {"nonlinearity": "tanh"} if m["cell"] == "rnn" else {}
    encoder = torch.nn.Embedding(V, m["embedding_size"])
    rnn = cls(m["embedding_size"], m["hidden_size"], m["layers"], **kw)
    decoder = torch.nn.Linear(m["hidden_size"], V)
    encoder.load_state_dict({"weight": w["encoder.weight"]}, strict=True)
    rnn.load_state_dict({k[4:]: v for k, v in w.items() if k.startswith("rnn.")}, strict=True)
    decoder.load_state_dict({"weight": w["decoder.weight"], "bias": w["decoder.bias"]}, strict=True)
    with torch.no_grad():
        seq = torch.from_numpy(np.concatenate([[eos_id], ids]).astype(np.int64))
        out, _ = rnn(encoder(seq[:-1, None]))  # (T, 1, H): one stream, state carried through
        logp = torch.log_softmax(decoder(out[:, 0]).double(), dim=-1)
        nll = -logp.gather(1, seq[1:, None]).mean().item()
    return math.exp(nll)


@pytest.mark.parametrize(
    "model",
    [
        {"cell": "rnn", "layers": 1},
        {"cell": "lstm", "layers": 2, "dropout": 0.2},
        {"cell": "gru", "layers": 2, "embedding_size": 12, "tie_weights": True},
    ],
)
def test_trained_checkpoint_loads_into_torch_and_scores_the_same(workdir, model):
    cfg = load_config(write_config(workdir, model=model))
    run_training(cfg)
    ours, tokenizer, vocab, _ = load_model(cfg.checkpoint.dir)
    ckpt_dir = load_checkpoint(cfg.checkpoint.dir).path
    ids = encode_files(resolve_files(str(workdir / "train.txt"), "test"), tokenizer, vocab, "utf-8", "strict")
    our_ppl = evaluate(ours, ids, start_id=vocab.eos_id).perplexity
    ref_ppl = torch_perplexity(ckpt_dir, ids, vocab.eos_id)
    assert abs(our_ppl - ref_ppl) / ref_ppl < 1e-3, (our_ppl, ref_ppl)
