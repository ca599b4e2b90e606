"""Should the two networks of `model.direction: both` share the embedding and the output layer?

    python benchmarks/bench_twoway_sharing.py [--config configs/default.yaml] [--seeds 1 2 3]

Trains the two-way model of --config twice per seed through the real training loop
(`run_training`, so `Trainer.step`): as `rnn` builds it (two networks sharing nothing but the
vocabulary) and with the forward and backward networks sharing one embedding matrix and one output
layer (the same arrays; each shared weight gets the sum of the gradients of the two directions'
losses, as each network's own weights get the gradient of its own loss).  Prints each run's test
perplexity in each direction, the parameter counts and the medians over the seeds.

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnncli import train as train_mod  # noqa: E402
from rnncli.config import load_config  # noqa: E402
from rnncli.data import iter_file_tokens, resolve_files  # noqa: E402
from rnncli.infer import evaluate, load_models  # noqa: E402
from rnncli.model import RNNModel  # noqa: E402
from rnncli.optim import dense  # noqa: E402
from rnncli.twoway import BACKWARD_PREFIX, TwoWayModel, reverse_stream  # noqa: E402


class SharedTwoWayModel(TwoWayModel):
    """The pair with one embedding and one output layer: the backward network holds the forward's arrays."""

    def __init__(self, forward: RNNModel, backward: RNNModel):
        self.shared = [k for k in forward.params if k.startswith(("encoder.", "decoder."))]
        for k in self.shared:
            backward.params[k] = forward.params[k]  # the same array
        super().__init__(forward, backward)
        for k in self.shared:
            del self.params[BACKWARD_PREFIX + k]  # one parameter, updated once

    def num_params(self) -> int:
        return super().num_params() - sum(self.params[k].size for k in self.shared)

    def backward(self, cache, on_ready=None) -> dict:
        grads = super().backward(cache)
        for k in self.shared:
            grads[k] = dense(grads[k]) + dense(grads.pop(BACKWARD_PREFIX + k))
        if on_ready is not None:
            on_ready(grads)
        return grads


def run(config: str, seed: int, shared: bool, folder: Path, test_ids) -> dict:
    cfg = load_config(config, ["model.direction=both", f"train.seed={seed}", f"checkpoint.dir={folder}"])
    real = train_mod.make_model
    if shared:
        train_mod.make_model = lambda c, v: SharedTwoWayModel(
            RNNModel(train_mod.model_shape(c, v)), RNNModel(train_mod.model_shape(c, v))
        )
    try:
        summary = train_mod.run_training(cfg)
    finally:
        train_mod.make_model = real
    models = load_models(folder)
    ids = models.vocab.encode(test_ids(models.tokenizer)).astype("int32")
    eos = models.vocab.eos_id
    fwd = evaluate(models.forward, ids, start_id=eos, rank=False).perplexity
    bwd = evaluate(models.backward, reverse_stream(ids, eos), start_id=eos, rank=False).perplexity
    return {"params": summary["params"], "forward": fwd, "backward": bwd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    test = load_config(args.config).data.test
    files = resolve_files(test if isinstance(test, list) else [test], "data.test")

    def test_ids(tokenizer):
        return iter_file_tokens(files, tokenizer, "utf-8", "strict")

    rows = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for shared in (False, True):
                r = run(args.config, seed, shared, Path(tmp) / f"s{seed}-{int(shared)}", test_ids)
                rows[shared].append(r)
                name = "shared" if shared else "separate"
                print(
                    f"seed {seed} {name:8s}: {r['params']:,} parameters, test perplexity forward "
                    f"{r['forward']:.2f}, backward {r['backward']:.2f}",
                    flush=True,
                )
    print(f"\nmedians over seeds {args.seeds}:")
    for shared in (False, True):
        rs = rows[shared]
        f, b = statistics.median(r["forward"] for r in rs), statistics.median(r["backward"] for r in rs)
        name = "shared" if shared else "separate"
        print(f"{name:8s}: {rs[0]['params']:,} parameters, forward {f:.2f}, backward {b:.2f}")


if __name__ == "__main__":
    main()
