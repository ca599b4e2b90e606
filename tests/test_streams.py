"""Streams and options as a script uses them (issue 18): a bad line does not stop the lines after
it, --beam is accepted whatever the blanks, --min-prob reads the figure shown first, text comes
from files and stdin together, and small probabilities keep their digits."""

import json

import pytest

from rnncli.cli import main
from rnncli.cli.common import prob as _prob

GOOD, GOOD2 = "o menino ___ em casa.", "a mãe trouxe um ___ quente."
STREAM = f"{GOOD}\n\nsem lacuna nenhuma\n{GOOD2}\n"


@pytest.fixture
def model(tiny_run, workdir, monkeypatch):
    monkeypatch.setenv("RNN_CHECKPOINT", str(tiny_run))
    return tiny_run


def test_a_bad_line_of_a_stream_is_named_and_the_lines_after_it_are_filled(runner, model):
    result = runner.invoke(main, ["fill"], input=STREAM)
    assert result.exit_code == 2
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [GOOD, GOOD2]
    errors = result.stderr.splitlines()
    assert errors[0].startswith("rnn: error: stdin line 2 '': empty line")
    assert errors[1].startswith("rnn: error: stdin line 3 'sem lacuna nenhuma': no blank")
    assert errors[2] == "rnn: error: 2 of 4 lines could not be filled (named above); the others were"
    alone = [runner.invoke(main, ["fill", line]).stdout for line in (GOOD, GOOD2)]
    assert [line.split("\t", 1)[1] for line in result.stdout.splitlines()] == [a.strip() for a in alone]


def test_a_bad_line_gets_an_error_record_in_its_place_with_json(runner, model):
    result = runner.invoke(main, ["fill", "--format", "json"], input=STREAM)
    assert result.exit_code == 2
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in records] == STREAM.splitlines()
    assert [r.get("line_number") for r in records] == [None, 2, 3, None]
    assert "fills" in records[0] and "fills" in records[3]
    assert "empty line" in records[1]["error"] and "no blank" in records[2]["error"]
    assert result.stderr.strip().endswith(
        "2 of 4 lines could not be filled (their records have an error key); the others were"
    )


def test_every_bad_argument_line_is_named_and_the_good_ones_answered(runner, model):
    result = runner.invoke(main, ["fill", "sem lacuna", GOOD])
    assert result.exit_code == 2
    assert result.stdout.startswith(GOOD + "\t")
    assert "argument 1 'sem lacuna': no blank" in result.stderr
    one = runner.invoke(main, ["fill", "sem lacuna"])  # a single line: its error alone, as before
    assert one.exit_code == 2 and one.stdout == ""
    assert one.stderr.strip() == "rnn: error: 'sem lacuna': no blank (___) in the line"


def test_fill_accepts_beam_on_a_line_with_one_blank(runner, model):
    plain = runner.invoke(main, ["fill", GOOD])
    beamed = runner.invoke(main, ["fill", "--beam", "3", GOOD])
    assert beamed.exit_code == 0, beamed.output
    assert beamed.stdout == plain.stdout


def test_complete_min_prob_reads_match_prob(runner, model):
    prompt = "o menino a"
    everything = json.loads(
        runner.invoke(main, ["predict", "--complete", "--format", "json", "-k", "50", prompt]).stdout
    )
    words = everything["predictions"]
    assert len(words) >= 2
    cut = words[0]["match_prob"] / 2  # the best match passes; its overall probability is lower than its share
    assert words[0]["prob"] < cut
    kept = json.loads(
        runner.invoke(
            main, ["predict", "--complete", "--format", "json", "-k", "50", "--min-prob", str(cut), prompt]
        ).stdout
    )["predictions"]
    assert kept == [w for w in words if w["match_prob"] >= cut] and kept


def test_no_survivor_prints_one_empty_line_for_predict_and_complete(runner, model):
    plain = runner.invoke(main, ["predict", "--min-prob", "1", "o menino"])
    complete = runner.invoke(main, ["predict", "--complete", "--min-prob", "1", "o menino a"])
    assert plain.exit_code == complete.exit_code == 0
    assert plain.stdout == complete.stdout == "\n"


def test_predict_help_says_which_probability_min_prob_reads(runner):
    text = " ".join(runner.invoke(main, ["predict", "--help"]).stdout.split())
    assert "--complete the share among the matching words (match_prob" in text


@pytest.mark.parametrize("command", ["score", "eval", "tokenize"])
def test_text_given_as_an_argument_gets_the_hint_that_text_comes_from_files_or_stdin(runner, model, command):
    result = runner.invoke(main, [command, "o menino acordou"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"rnn: error: o menino acordou: no such file; rnn {command} reads its text from files or stdin, "
        f"e.g. echo 'o menino acordou' | rnn {command}"
    )


def test_score_reads_stdin_as_one_of_its_files(runner, model, workdir):
    (workdir / "a.txt").write_text("o menino acordou.\n", encoding="utf-8")
    both = runner.invoke(main, ["score", "a.txt", "-"], input="a mãe trouxe chá.\n")
    assert both.exit_code == 0, both.output
    apart = (
        runner.invoke(main, ["score", "a.txt"]).stdout
        + runner.invoke(main, ["score"], input="a mãe trouxe chá.\n").stdout
    )
    assert both.stdout == apart and len(both.stdout.splitlines()) == 2
    twice = runner.invoke(main, ["score", "-", "a.txt", "-"], input="x\n")
    assert twice.exit_code == 2 and "stdin can be read once" in twice.stderr


def test_eval_reads_stdin_beside_its_files(runner, model, workdir):
    (workdir / "a.txt").write_text("o menino acordou.\n", encoding="utf-8")
    (workdir / "b.txt").write_text("a mãe trouxe chá.\n", encoding="utf-8")
    files = json.loads(runner.invoke(main, ["eval", "--format", "json", "a.txt", "b.txt"]).stdout)
    mixed = runner.invoke(main, ["eval", "--format", "json", "a.txt", "-"], input="a mãe trouxe chá.\n")
    assert mixed.exit_code == 0, mixed.output
    assert json.loads(mixed.stdout) == files


def test_small_probabilities_keep_two_significant_digits():
    assert _prob(0.578) == "0.578" and _prob(0.0012) == "0.001"
    assert _prob(0.00034) == "0.00034" and _prob(3.14e-7) == "3.1e-07"
    assert _prob(0.0) == "0.000"  # a true zero


def test_text_output_shows_no_zero_for_a_word_that_has_a_probability(runner, workdir):
    from rnncli.config import load_config
    from rnncli.training import run_training

    from .conftest import write_config

    run_training(load_config(write_config(workdir, train={"epochs": 30, "lr": 0.05})))  # a peaked model
    listed = runner.invoke(main, ["predict", "-c", "run", "-k", "100", "--show-unk", "o menino acordou sentindo-se"])
    exact = runner.invoke(
        main, ["predict", "-c", "run", "-k", "100", "--show-unk", "--format", "json", "o menino acordou sentindo-se"]
    )
    probs = [w["prob"] for w in json.loads(exact.stdout)["predictions"]]
    assert min(probs) < 0.0005  # the case the text once showed as 0.000
    figures = [pair.rsplit(" ", 1)[1] for pair in listed.stdout.strip().split(", ")]
    assert figures == [_prob(p) for p in probs]
    assert all(abs(float(f) - p) <= max(0.0005, 0.05 * p) for f, p in zip(figures, probs))
    assert "0.000" not in figures


BAD_BYTES = b"o menino\nele \xff\xfe saiu\na m\xc3\xa3e\n"  # line 2 is not utf-8


@pytest.mark.parametrize("command", [["predict"], ["score"], ["fill"]])
def test_a_line_that_is_not_text_is_named_and_the_stream_goes_on(runner, model, command):
    stream = BAD_BYTES if command != ["fill"] else BAD_BYTES.replace(b"\n", b" ___ casa\n")
    result = runner.invoke(main, [*command, "-"], input=stream)
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == 2  # lines 1 and 3 answered
    assert result.stderr.startswith("rnn: error: stdin: line 2 is not valid utf-8 (byte 5)")
    records = [
        json.loads(line)
        for line in runner.invoke(main, [*command, "-", "--format", "json"], input=stream).stdout.splitlines()
    ]
    assert [r.get("line_number") for r in records] == [None, 2, None]
    assert "not valid utf-8" in records[1]["error"]


def test_a_bad_line_keeps_the_seeds_of_the_lines_after_it(runner, model):
    """Each prompt draws from a generator seeded by its line number, bad lines counted."""
    args = ["predict", "-", "-g", "5", "--seed", "3", "--format", "json"]
    with_bad = runner.invoke(main, args, input=BAD_BYTES).stdout.splitlines()
    with_good = runner.invoke(main, args, input=BAD_BYTES.replace(b"\xff\xfe", b"xx")).stdout.splitlines()
    assert json.loads(with_bad[2])["text"] == json.loads(with_good[2])["text"]
    assert json.loads(with_bad[0])["text"] == json.loads(with_good[0])["text"]


def test_eval_fill_and_keystrokes_report_their_progress(tiny_run, monkeypatch):
    """The long parts of `rnn eval` tell how far they are (the CLI draws a bar from it on a terminal)."""
    import rnncli.generate as generate_module
    from rnncli.complete import PrefixIndex, keystroke_savings
    from rnncli.fill import fill_accuracy
    from rnncli.infer import load_model

    model, tokenizer, vocab, _ = load_model(tiny_run)
    tokens = tokenizer.tokenize((tiny_run.parent / "test.txt").read_text(encoding="utf-8") * 3)
    ids = vocab.encode(tokens)
    monkeypatch.setattr(generate_module, "WORK_FLOATS", 20 * len(vocab))  # small blocks: several reports
    heard = []
    plain = fill_accuracy(model, None, ids, vocab.eos_id, chunk=16)
    told = fill_accuracy(model, None, ids, vocab.eos_id, chunk=16, progress=lambda d, t: heard.append((d, t)))
    assert told == plain
    assert len(heard) > 2 and [d for d, _ in heard] == sorted(d for d, _ in heard)
    assert heard[-1] == (plain["positions"], plain["positions"])
    heard.clear()
    index = PrefixIndex(vocab.itos, (vocab.unk_id, vocab.eos_id))
    args = (model, tokens, ids, index, vocab.eos_id, vocab.unk_id, 3)
    assert keystroke_savings(*args, lambda d, t: heard.append((d, t))) == keystroke_savings(*args)
    assert len(heard) > 2 and heard[-1] == (len(ids), len(ids))


@pytest.mark.parametrize("hyphen", ["\u2010", "\u2011"])
def test_a_fill_after_a_pasted_hyphen_is_spaced_as_after_an_ascii_one(tiny_run, hyphen):
    from rnncli.fill import blank_regex, split_line
    from rnncli.infer import load_model

    _, tokenizer, vocab, _ = load_model(tiny_run)
    line = "ele estava sentindo-___ e foi ao médico"
    ascii_text = split_line(line, tokenizer, vocab, blank_regex()).text(["mal"])
    pasted_text = split_line(line.replace("-", hyphen), tokenizer, vocab, blank_regex()).text(["mal"])
    assert pasted_text == ascii_text.replace("-", hyphen)
    assert ascii_text == "ele estava sentindo- mal e foi ao médico"


def test_a_fill_beam_that_cannot_fit_in_memory_is_refused_before_any_work(runner, model, monkeypatch):
    import rnncli.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda: 2**30)
    result = runner.invoke(main, ["fill", "--beam", "100000", "--shortlist", "500", "o ___ saiu de ___ cedo"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "rnn: error: --beam 100,000 keeps up to 50,000,000 partial fills with --shortlist 500"
    )
    assert runner.invoke(main, ["fill", "--beam", "50", "o ___ saiu de ___ cedo"]).exit_code == 0
