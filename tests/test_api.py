"""The Python API (`import rnncli`): every method answers what the matching CLI command prints.

The CLI's JSON is the reference: same words, same probabilities, same fields (``asdict`` of a
result is the JSON record, without the ``checkpoint`` key that the CLI adds).
"""

import dataclasses
import json
import subprocess
import sys

import pytest

import rnncli
from rnncli.cli import main
from rnncli.errors import DataError, RnnError, UsageError


@pytest.fixture(scope="module")
def model(tiny_run):
    return rnncli.load(tiny_run)


def _cli(runner, *args, input=None) -> list[dict]:
    result = runner.invoke(main, list(args), input=input)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _record(result) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(result)))


def test_import_rnncli_is_light():
    code = "import sys, rnncli; print(sorted(m for m in ('numpy', 'click', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_predict_equals_the_cli(model, tiny_run, runner):
    prompts = ["o menino", "a mãe trouxe", "", "Ele saiu."]
    cli = _cli(runner, "predict", "-c", str(tiny_run), "--format", "json", "-k", "4", *prompts)
    ours = model.predict(prompts, k=4)
    assert [[dataclasses.asdict(p) for p in row] for row in ours] == [r["predictions"] for r in cli]
    alone = model.predict("o menino", k=4)  # one prompt, one list (a batch of one: the last bits may differ)
    assert [p.word for p in alone] == [p.word for p in ours[0]]
    assert [p.prob for p in alone] == pytest.approx([p.prob for p in ours[0]], rel=1e-5)
    assert model.predict("o menino", k=50, min_prob=0.05) == [
        p for p in model.predict("o menino", k=50) if p.prob >= 0.05
    ]
    shown = {p.word for p in model.predict("o", k=100, show_unk=True)}
    assert "<unk>" in shown and "<unk>" not in {p.word for p in model.predict("o", k=100)}


def test_complete_equals_the_cli(model, tiny_run, runner):
    prompts = ["o menino acor", "a m", "sentindo-se ind", "xyz qw"]
    cli = _cli(runner, "predict", "-c", str(tiny_run), "--format", "json", "--complete", *prompts)
    ours = model.complete(prompts)
    assert [_record(c) for c in ours] == [{k: v for k, v in r.items() if k != "checkpoint"} for r in cli]
    one = model.complete("o menino acor", k=3)
    assert one[0].word == one.predictions[0].word and len(one) == len(one.predictions)


def test_generate_and_beam_equal_the_cli(model, tiny_run, runner):
    args = ["predict", "-c", str(tiny_run), "--format", "json", "-g", "6"]
    cli = _cli(runner, *args, "--seed", "3", "-t", "0.8", "o menino", "a mãe")
    ours = model.generate(["o menino", "a mãe"], words=6, seed=3, temperature=0.8, details=True)
    assert [_record(g) for g in ours] == [{k: v for k, v in r.items() if k != "checkpoint"} for r in cli]
    assert model.generate("o menino", words=6, seed=3, temperature=0.8) == ours[0].text
    beams = _cli(runner, *args, "--beam", "3", "o menino")[0]["beams"]
    assert [_record(b) for b in model.beam("o menino", 6, 3)] == beams


def test_fill_equals_the_cli(model, tiny_run, runner):
    lines = ["o menino ___ em casa.", "a ___ trouxe um ___ quente."]
    cli = _cli(runner, "fill", "-c", str(tiny_run), "--format", "json", *lines)
    ours = model.fill(lines)
    assert [_record(f) for f in ours] == [{k: v for k, v in r.items() if k != "checkpoint"} for r in cli]
    with pytest.raises(DataError, match="no blank"):
        model.fill("sem lacuna")
    kept = model.fill(["sem lacuna", lines[0]], errors="keep")
    assert isinstance(kept[0], DataError) and kept[1] == ours[0]


def test_score_equals_the_cli(model, tiny_run, runner):
    lines = ["o menino acordou.", "a zebra voou", ""]
    cli = _cli(runner, "score", "-c", str(tiny_run), "--format", "json", input="\n".join(lines) + "\n")
    ours = model.score(lines)
    for score, record in zip(ours, cli):
        mine = _record(score)
        mine["words"] = [{k: v for k, v in w.items() if k != "unk" or v} for w in mine["words"]]
        assert mine == {k: v for k, v in record.items() if k != "checkpoint"}


def test_evaluate_equals_the_cli(model, tiny_run, runner):
    text = tiny_run.parent / "test.txt"
    cli = _cli(runner, "eval", "-c", str(tiny_run), "--format", "json", "--fill", "--keystrokes", str(text))[0]
    ours = _record(model.evaluate([text], fill=True, keystrokes=True))
    cli.pop("checkpoint")
    assert {k: v for k, v in ours.items() if v is not None} == cli
    with open(text, encoding="utf-8") as f:  # an open file reads as its path does
        assert model.evaluate(f).perplexity == model.evaluate(str(text)).perplexity


def test_tokenize_equals_the_cli(model, tiny_run, runner):
    text = "O menino acordou sentindo-se indisposto. A zebra voou.\n"
    printed = runner.invoke(main, ["tokenize", "-c", str(tiny_run)], input=text).stdout.splitlines()
    tokens = model.tokenize(text)
    sentences, words = [], []
    for t in tokens:
        if t == "<eos>":
            sentences.append(" ".join(words))
            words = []
        else:
            words.append(t)
    assert sentences == printed


def test_train_returns_the_cli_summary(workdir, runner):
    from .conftest import write_config

    seen = []
    run = rnncli.train(write_config(workdir), overrides={"train.epochs": 2}, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert run.epochs == 2 and run.valid_ppl > 1 and run.checkpoint.startswith(str(workdir / "run"))
    assert not (workdir / ".rnn" / "last_run").exists()  # a process concern: the CLI records the last run
    args = ["train", str(write_config(workdir)), "-q", "--format", "json", "--set", "checkpoint.dir=cli"]
    cli = json.loads(runner.invoke(main, [*args, "--set", "train.epochs=2"]).stdout)
    mine = dataclasses.asdict(run)
    for key in ("valid_ppl", "best_valid_ppl", "tokens", "steps", "epochs", "vocab_size", "params"):
        assert mine[key] == cli[key], key
    assert set(mine) == set(cli)


def test_errors_are_the_projects_exceptions(model, tiny_run, tmp_path):
    with pytest.raises(UsageError):
        model.predict(3)
    with pytest.raises(RnnError):
        rnncli.load(tmp_path / "nowhere")
    with pytest.raises(DataError):
        model.evaluate([tmp_path / "missing.txt"])


def test_eight_threads_share_one_model(model):
    """One Model serves several threads at once (a web server): each thread's answers equal the
    sequential ones, for every method that reads the model."""
    import threading

    prompts = [f"o menino {w}" for w in ("acordou", "ficou", "saiu", "voltou", "trouxe", "disse", "estava", "era")]
    jobs = {
        "predict": lambda p: model.predict(p, k=10),
        "score": lambda p: model.score(p),
        "fill": lambda p: model.fill(p.replace("menino", "___"), k=5),
        "complete": lambda p: model.complete(p[:-2], k=5),
    }
    expected = {(name, p): job(p) for name, job in jobs.items() for p in prompts}
    barrier, got, errors = threading.Barrier(8), {}, []

    def work(p):
        try:
            barrier.wait()
            for _ in range(20):
                for name, job in jobs.items():
                    got[(name, p, _)] = job(p)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(answer == expected[(name, p)] for (name, p, _), answer in got.items())
