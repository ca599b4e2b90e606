"""`rnn quantize`: int8 checkpoints (per-row symmetric scales) that every command loads.

Each kind of model (cells, tied weights, adaptive softmax, two-way, word pieces) is quantized and
checked: the file's size, the int8 values against the float32 weights (within half a scale step),
the model's answers and its perplexity against the float32 model's, the checksums, resume and the
CLI's one-line errors.
"""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import rnncli
from rnncli.checkpoint import META, META_DIGEST, MODEL_FILE, _meta_digest, find_checkpoint, load_checkpoint
from rnncli.errors import CheckpointError
from rnncli.quantize import SCALE_SUFFIX, dequantize_weights, quantize_checkpoint, quantize_weights

from .conftest import write_config

WIDE = {"embedding_size": 64, "hidden_size": 64}  # rows wide enough that the scales cost little
KINDS = {
    "rnn": {"model": {"cell": "rnn", **WIDE}},
    "lstm-tied": {"model": {"cell": "lstm", "tie_weights": True, **WIDE}},
    "gru-adaptive": {"model": {"cell": "gru", "softmax": "adaptive", "cutoffs": [8, 20], **WIDE}},
    "two-way": {"model": {"cell": "lstm", "direction": "both", **WIDE}},
    "pieces": {"model": {"cell": "lstm", **WIDE}, "tokenizer": {"units": "pieces", "pieces": 300}},
}


def _quantized(trained_once, tmp_path, kind):
    folder = trained_once(**KINDS[kind])
    out = quantize_checkpoint(folder / "run", tmp_path / "int8")
    return folder, find_checkpoint(folder / "run"), out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_int8_checkpoint_is_small_close_and_answers_as_the_float_one(trained_once, tmp_path, kind):
    folder, source, out = _quantized(trained_once, tmp_path, kind)
    assert out == tmp_path / "int8" / "ckpt-int8" and (tmp_path / "int8" / "index.json").exists()
    ratio = (out / MODEL_FILE).stat().st_size / (source / MODEL_FILE).stat().st_size
    assert ratio <= 0.30, ratio

    original = load_checkpoint(source).weights
    stored = load_file(out / MODEL_FILE)
    for name, w in original.items():
        if w.ndim == 2:
            q, scale = stored[name], stored[name + SCALE_SUFFIX]
            assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (w.shape[0],), name
            np.testing.assert_allclose(scale, np.abs(w).max(axis=1) / 127, rtol=1e-6, err_msg=name)
        else:
            assert stored[name].dtype == np.float32 and np.array_equal(stored[name], w), name
    back = dequantize_weights(load_checkpoint(out))
    assert set(back) == set(original)
    for name, w in original.items():
        step = stored[name + SCALE_SUFFIX][:, None] if w.ndim == 2 else 0.0
        assert np.all(np.abs(back[name] - w) <= step / 2 + 1e-7), name

    meta = json.loads((out / META).read_text())
    assert meta["quantized"]["dtype"] == "int8" and meta["quantized"]["scheme"] == "per-row symmetric"
    assert "rng" not in meta and load_checkpoint(out, with_trainer=True).trainer == {}
    if kind == "pieces":
        assert (out / "pieces.model").read_bytes() == (source / "pieces.model").read_bytes()

    fp32, int8 = rnncli.load(folder / "run"), rnncli.load(tmp_path / "int8")
    test = str(folder / "test.txt")
    a, b = fp32.evaluate(test), int8.evaluate(test)
    assert abs(b.perplexity / a.perplexity - 1) < 0.02, (a.perplexity, b.perplexity)
    if int8.forward is not None:
        assert [p.word for p in int8.predict("O menino", k=3)] == [p.word for p in fp32.predict("O menino", k=3)]


def test_quantize_weights_rounds_each_row_on_its_own_scale():
    w = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [1e-3, 2e-3, -4e-3]], dtype=np.float32)  # (3, 3)
    q = quantize_weights({"w": w, "b": np.ones(3, dtype=np.float32)})
    assert q["w"].tolist() == [[64, -127, 32], [0, 0, 0], [32, 64, -127]]
    np.testing.assert_allclose(q["w.scale"], [1.0 / 127, 0.0, 4e-3 / 127], rtol=1e-6)
    assert q["b"].dtype == np.float32 and "b.scale" not in q


def test_every_command_reads_an_int8_checkpoint(trained_once, tmp_path, runner):
    from rnncli.cli import main

    folder, _, _ = _quantized(trained_once, tmp_path, "two-way")
    out = str(tmp_path / "int8")
    test = str(folder / "test.txt")
    for args in (
        ["predict", "-c", out, "O menino"],
        ["eval", "-c", out, test, "--format", "json"],
        ["score", "-c", out, test],
        ["fill", "-c", out, "O ___ acordou"],
        ["tokenize", "-c", out, test],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and result.stdout, (args, result.stderr)


def test_checksums_catch_a_flipped_byte_and_a_missing_scale_is_one_line(trained_once, tmp_path, runner):
    from rnncli.cli import main

    _, _, out = _quantized(trained_once, tmp_path, "rnn")
    model = out / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[-5] ^= 0x01  # a weight's byte, past the header
    model.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: checksum mismatch"):
        rnncli.load(out)
    bad = runner.invoke(main, ["predict", "-c", str(out), "O menino"])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "checksum mismatch" in bad.stderr

    # a scale missing, with the checksums made to match: the loader itself must notice
    shutil.rmtree(tmp_path / "int8")
    out = quantize_checkpoint(trained_once(**KINDS["rnn"]) / "run", tmp_path / "int8")
    tensors = load_file(out / MODEL_FILE)
    del tensors["rnn.weight_hh_l0.scale"]
    save_file(tensors, out / MODEL_FILE)
    _rechecksum(out)
    with pytest.raises(CheckpointError, match=r"scale of rnn.weight_hh_l0 \(rnn.weight_hh_l0.scale\) is missing"):
        rnncli.load(out)
    bad = runner.invoke(main, ["eval", "-c", str(out), "train.txt"])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "is missing" in bad.stderr


def _rechecksum(ckpt) -> None:
    import hashlib

    meta = json.loads((ckpt / META).read_text())
    meta["files"][MODEL_FILE] = hashlib.sha256((ckpt / MODEL_FILE).read_bytes()).hexdigest()
    meta[META_DIGEST] = _meta_digest(meta)
    (ckpt / META).write_text(json.dumps(meta))


def test_resume_from_an_int8_checkpoint_is_refused_in_one_line(trained_once, workdir, runner):
    from rnncli.cli import main

    out = quantize_checkpoint(trained_once(**KINDS["rnn"]) / "run", workdir / "int8")
    config = write_config(workdir, model=KINDS["rnn"]["model"], checkpoint={"dir": str(workdir / "int8")})
    before = (out / MODEL_FILE).read_bytes()
    result = runner.invoke(main, ["train", str(config), "-q", "--resume", "--set", "train.epochs=3"])
    assert result.exit_code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "is an int8 checkpoint" in result.stderr
    assert "Traceback" not in result.stderr and (out / MODEL_FILE).read_bytes() == before


def test_the_command_refuses_an_existing_folder_and_its_own_source(trained_once, tmp_path, runner):
    from rnncli.cli import main

    run = trained_once(**KINDS["rnn"]) / "run"
    out = tmp_path / "int8"
    ok = runner.invoke(main, ["quantize", "-c", str(run), "-o", str(out)])
    assert ok.exit_code == 0 and ok.stdout == "" and "int8 checkpoint written" in ok.stderr, ok.stderr
    first = (out / "ckpt-int8" / MODEL_FILE).read_bytes()
    again = runner.invoke(main, ["quantize", "-c", str(run), "-o", str(out)])
    assert again.exit_code == 2 and again.stderr == f"rnn: error: {out} exists; pass --overwrite to replace it\n"
    over = runner.invoke(main, ["quantize", "-c", str(run), "-o", str(out), "--overwrite"])
    assert over.exit_code == 0, over.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith("ckpt-")] == ["ckpt-int8-2"]  # the old one pruned
    assert (out / "ckpt-int8-2" / MODEL_FILE).read_bytes() == first
    for args, says in (
        (["-c", str(out), "-o", str(tmp_path / "twice")], "already an int8 checkpoint"),
        (["-c", str(run), "-o", str(run), "--overwrite"], "holds the checkpoint being quantized"),
        (["-c", str(tmp_path / "nothing"), "-o", str(tmp_path / "y")], "checkpoint not found"),
        (["-c", str(run), "-o", str(tmp_path / "no" / "such")], "is not a folder"),
    ):
        bad = runner.invoke(main, ["quantize", *args])
        assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and says in bad.stderr, (args, bad.stderr)
    assert runner.invoke(main, ["quantize", "--help"]).exit_code == 0
