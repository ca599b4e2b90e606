"""`rnn predict`, `rnn score` and the `rnn eval` gates, in-process (a real pipe only for `| head -1`)."""

import json
import math
import os
import subprocess
import sys

import pytest

from rnncli.cli import main


@pytest.fixture
def trained(workdir, tiny_run, monkeypatch):
    """workdir, with the session's tiny model as the default checkpoint (read only)."""
    monkeypatch.setenv("RNN_CHECKPOINT", str(tiny_run))
    return workdir


def run(runner, *args, input=None):
    return runner.invoke(main, list(args), input=input)


def test_help_of_score(runner):
    result = run(runner, "score", "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


# ------------------------------------------------------------------- top-k
def test_json_lines_keep_the_order_of_1000_stdin_prompts(trained, runner):
    words = ["o menino", "a mãe", "choveu", "", "Ele saiu.", "sentindo-se", "o médico disse que"]
    prompts = [f"{words[i % len(words)]} {i}" if i % 3 else words[i % len(words)] for i in range(1000)]
    result = run(runner, "predict", "-", "--format", "json", "-k", "2", input="\n".join(prompts) + "\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1000
    objs = [json.loads(line) for line in lines]
    assert [o["prompt"] for o in objs] == prompts
    assert all(len(o["predictions"]) == 2 for o in objs)
    assert result.stderr == ""


def test_batched_answers_equal_one_prompt_at_a_time(trained, runner):
    prompts = ["o menino", "a mãe trouxe", "", "choveu muito na"]
    batch = run(runner, "predict", "--format", "json", *prompts)
    for prompt, line in zip(prompts, batch.stdout.splitlines()):
        alone = json.loads(run(runner, "predict", "--format", "json", prompt).stdout)
        got = json.loads(line)
        assert [p["word"] for p in got["predictions"]] == [p["word"] for p in alone["predictions"]]
        for a, b in zip(got["predictions"], alone["predictions"]):
            assert a["prob"] == pytest.approx(b["prob"], rel=1e-5)


def test_tsv_rows_and_min_prob(trained, runner):
    result = run(runner, "predict", "--format", "tsv", "-k", "3", "o menino", "a mãe")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["o menino"] * 3 + ["a mãe"] * 3
    assert all(0 < float(r[2]) <= 1 for r in rows)
    few = run(runner, "predict", "--format", "tsv", "-k", "50", "--min-prob", "0.05", "o menino")
    probs = [float(line.split("\t")[2]) for line in few.stdout.splitlines()]
    assert probs and all(p >= 0.05 for p in probs) and len(probs) < 50


def test_show_unk_and_empty_prompt(trained, runner):
    result = run(runner, "predict", "--format", "json", "-k", "200", "--show-unk", "")
    words = [p["word"] for p in json.loads(result.stdout)["predictions"]]
    assert "<unk>" in words
    plain = run(runner, "predict", "--format", "json", "-k", "200", "")
    assert json.loads(plain.stdout)["prompt"] == ""
    assert not {"<unk>", "<eos>"} & {p["word"] for p in json.loads(plain.stdout)["predictions"]}


def test_trailing_space_and_sentence_end(trained, runner):
    a = json.loads(run(runner, "predict", "--format", "json", "o menino").stdout)
    b = json.loads(run(runner, "predict", "--format", "json", "o menino ").stdout)
    assert a["predictions"] == b["predictions"]
    # a prompt that ends a sentence asks for the next sentence's first word, with or without a space
    c = json.loads(run(runner, "predict", "--format", "json", "Ele saiu.").stdout)
    d = json.loads(run(runner, "predict", "--format", "json", "Ele saiu. ").stdout)
    assert c["predictions"] == d["predictions"]


def test_input_file_and_text_output(trained, runner):
    (trained / "prompts.txt").write_text("o menino\r\na mãe\n", encoding="utf-8")
    result = run(runner, "predict", "--input", "prompts.txt")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["o menino", "a mãe"]
    assert len(lines[0].split("\t")[1].split(", ")) == 5


# -------------------------------------------------------------- generation
def test_generation_is_reproducible_and_stops_at_eos(trained, runner):
    args = ["predict", "-g", "15", "--seed", "11", "--top-p", "0.9", "--top-k-sampling", "20", "--format", "json"]
    one = run(runner, *args, "o menino", "a mãe")
    two = run(runner, *args, "o menino", "a mãe")
    assert one.exit_code == 0, one.output
    assert one.stdout == two.stdout
    objs = [json.loads(line) for line in one.stdout.splitlines()]
    assert all(len(o["continuation"]) == 15 and o["logprob"] < 0 for o in objs)
    # the first prompt alone draws the same words as inside the batch
    alone = json.loads(run(runner, *args, "o menino").stdout)
    assert alone["continuation"] == objs[0]["continuation"]
    stop = run(runner, "predict", "-g", "60", "--seed", "2", "--stop-at-eos", "--format", "json", "o menino")
    cont = json.loads(stop.stdout)["continuation"]
    assert "<eos>" not in cont[:-1] and (cont[-1] == "<eos>" or len(cont) == 60)
    assert "<unk>" not in cont


def test_temperature_zero_is_beam_of_one(trained, runner):
    greedy = run(runner, "predict", "-g", "6", "-t", "0", "--format", "json", "o menino")
    beam = run(runner, "predict", "-g", "6", "--beam", "1", "--format", "json", "o menino")
    g = json.loads(greedy.stdout)
    [b] = json.loads(beam.stdout)["beams"]
    assert b["continuation"] == g["continuation"]
    assert b["logprob"] == pytest.approx(g["logprob"], rel=1e-5)


def test_beam_prints_w_continuations_best_first(trained, runner):
    result = run(runner, "predict", "-g", "5", "--beam", "3", "--format", "json", "a mãe")
    assert result.exit_code == 0, result.output
    beams = json.loads(result.stdout)["beams"]
    assert len(beams) == 3
    scores = [b["logprob"] for b in beams]
    assert scores == sorted(scores, reverse=True)
    assert all(b["text"].startswith("a mãe") for b in beams)
    tsv = run(runner, "predict", "-g", "5", "--beam", "3", "--format", "tsv", "a mãe")
    assert [len(line.split("\t")) for line in tsv.stdout.splitlines()] == [3, 3, 3]


@pytest.mark.parametrize(
    "args, named",
    [
        (["--top-p", "0.5", "x"], "--top-p"),
        (["--beam", "2", "x"], "--beam"),
        (["-g", "3", "--beam", "2", "--top-p", "0.5", "x"], "--top-p"),
        (["x", "--input", "f.txt"], "--input"),
        (["-g", "3", "--min-prob", "0.1", "x"], "--min-prob"),
        (["--interactive", "x"], "--interactive"),
    ],
)
def test_contradictory_options_are_usage_errors(trained, runner, args, named):
    result = run(runner, "predict", *args)
    assert result.exit_code == 2
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_missing_input_file_exits_2(trained, runner):
    result = run(runner, "predict", "--input", "nowhere.txt")
    assert result.exit_code == 2 and "nowhere.txt" in result.stderr


def test_interactive_answers_each_line(trained, runner):
    result = run(runner, "predict", "--interactive", "-k", "2", input="o menino\na mãe\n")
    assert result.exit_code == 0, result.output
    answers = [line for line in result.stdout.splitlines() if ", " in line]
    assert len(answers) == 2


# ----------------------------------------------------------------- scoring
def test_score_prints_logprob_perplexity_and_word_probabilities(trained, runner):
    text = "O menino acordou sentindo-se indisposto.\n\nxyzzy menino\n"
    result = run(runner, "score", "--format", "json", input=text)
    assert result.exit_code == 0, result.output
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in objs] == text.splitlines()
    first = objs[0]
    assert first["tokens"] == len(first["words"]) == 7  # 5 words, ".", <eos>
    assert first["logprob"] == pytest.approx(sum(math.log(w["prob"]) for w in first["words"]))
    assert first["perplexity"] == pytest.approx(math.exp(-first["logprob"] / 7))
    assert objs[1]["tokens"] == 0 and objs[1]["perplexity"] is None
    assert objs[2]["words"][0] == {"word": "xyzzy", "prob": objs[2]["words"][0]["prob"], "unk": True}
    text_out = run(runner, "score", input=text)
    assert float(text_out.stdout.splitlines()[0].split("\t")[0]) == pytest.approx(first["logprob"], abs=1e-3)
    tsv = run(runner, "score", "--format", "tsv", input="o menino\n")
    assert [r.split("\t")[1] for r in tsv.stdout.splitlines()] == ["o", "menino", "<eos>"]


def test_a_likely_sentence_scores_better_than_its_shuffle(trained, runner):
    text = "o menino acordou sentindo-se indisposto e ficou em casa.\ncasa em ficou e indisposto menino o acordou.\n"
    objs = [json.loads(line) for line in run(runner, "score", "--format", "json", input=text).stdout.splitlines()]
    assert objs[0]["logprob"] > objs[1]["logprob"]


# -------------------------------------------------------------------- gates
def test_eval_gates_exit_codes_and_json(trained, runner):
    text = "O menino acordou sentindo-se indisposto.\n"
    ok = run(runner, "eval", "-", "--max-ppl", "1e9", "--min-top5", "0", "--format", "json", input=text)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["gate"] == {"max_ppl": 1e9, "min_top5": 0.0, "passed": True}
    bad = run(runner, "eval", "-", "--min-top5", "1", "--format", "json", input="xyzzy plugh abacaxi\n")
    assert bad.exit_code == 1
    gate = json.loads(bad.stdout)["gate"]
    assert gate["passed"] is False and "--min-top5" in gate["reason"]
    assert len(bad.stderr.strip().splitlines()) == 1 and "--min-top5" in bad.stderr
    usage = run(runner, "eval", "-", "--min-top5", "2", input=text)
    assert usage.exit_code == 2


# ------------------------------------------------------------ a real pipe
@pytest.mark.slow  # a subprocess
def test_pipe_into_head_ends_quietly_with_exit_0(trained):
    (trained / "many.txt").write_text("o menino acordou\n" * 20000, encoding="utf-8")
    env = dict(os.environ)  # RNN_CHECKPOINT names the tiny model
    with open(trained / "many.txt", "rb") as stdin:
        rnn = subprocess.Popen(
            [sys.executable, "-m", "rnncli", "predict", "-", "--format", "json"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        head = subprocess.Popen(["head", "-1"], stdin=rnn.stdout, stdout=subprocess.PIPE)
        rnn.stdout.close()  # only head reads it now: when head exits, rnn's writes fail with EPIPE
        first, _ = head.communicate(timeout=120)
        err = rnn.stderr.read().decode()
        code = rnn.wait(timeout=120)
    assert json.loads(first)["prompt"] == "o menino acordou"
    assert code == 0
    assert "Traceback" not in err and "Error" not in err
