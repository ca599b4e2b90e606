"""Every command's output on the default model, against a record taken before the CLI's refactor (issue 19).

Each case below is one `rnn` command line (with its stdin, if any) run in-process on one of three
models trained once per session: `default` (configs/default.yaml as it is), `both` (the same with
model.direction=both, 3 epochs: 20 would double the run time) and `backward` (model.direction=backward,
2 epochs); conftest.golden_models trains them, and test_docs copies `default`. Its stdout, stderr
and exit code must equal tests/golden/outputs.jsonl, after replacing exactly what differs from run
to run: the models' absolute folders (`{default}`, `{both}`, `{backward}`) and the time, speed and
memory figures of `train` and `report`.

Training is deterministic on one machine but not across CPUs and BLAS builds, so the comparison has two
modes. When this machine's fingerprint (numpy, CPU, BLAS and its thread count) equals the recording
machine's (tests/golden/fingerprint.json), outputs must be byte-identical. Otherwise every non-numeric
part must be identical and every number within a relative 1e-4, or one unit in its last printed
decimal (a "0.062" may read "0.063"); the assertion message names the mode.

To record again (only when an output is meant to change, with the change named in the commit), from
the root of a checkout of the code whose outputs are wanted (`git worktree add` gives an untouched one):

    python -m tests.test_golden --record            # refuses to overwrite an existing record
    python -m tests.test_golden --record --force    # overwrites it
"""

from __future__ import annotations

import difflib
import json
import platform
import re
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rnncli.cli import main

from .conftest import working_in

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
OUTPUTS = GOLDEN / "outputs.jsonl"
FINGERPRINT = GOLDEN / "fingerprint.json"
CONFIG = REPO / "configs" / "default.yaml"

# the three models: the overrides given to `rnn train configs/default.yaml --format json`
MODELS = {
    "default": [],
    "both": ["--set", "model.direction=both", "--set", "train.epochs=3"],
    "backward": ["--set", "model.direction=backward", "--set", "train.epochs=2"],
}

# the files the cases read, written into the folder they run in (test.txt is data/test.txt)
INPUTS = {
    "prompts.txt": "o menino\na casa\nEle saiu.\n",
    "bad.txt": b"o menino\nest\xe1 \xff bem\na casa\n",  # line 2 is latin-1, not utf-8
    "sentences.txt": "O menino acordou cedo.\n\nA mãe trouxe um chá quente.\n",
    "other.txt": "Ela saiu para o trabalho.\n",
    "lines.txt": "ele estava sentindo-se ___ e foi ao médico\no ___ saiu de ___ cedo\n",
    "badfill.txt": "a ___ caiu\n___ menino\nsem lacuna\no menino ___ cedo\n",
}


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # after `rnn`; {default}, {both}, {backward} stand for the models' folders
    stdin: bytes | None = None


def case(id: str, *argv: str, stdin: str | bytes | None = None) -> Case:
    return Case(id, argv, stdin.encode() if isinstance(stdin, str) else stdin)


D, B, K = "{default}", "{both}", "{backward}"
PROMPTS = "o menino\na casa\n\nEle saiu.\n"
TWO_BLANKS = "o ___ saiu de ___ cedo"
ONE_BLANK = "ele estava sentindo-se ___ e foi ao médico"

CASES = [
    # ------------------------------------------------------------------ predict: next words
    case("predict-text", "predict", "-c", D, "o menino"),
    case("predict-json", "predict", "-c", D, "--format", "json", "o menino"),
    case("predict-tsv", "predict", "-c", D, "--format", "tsv", "o menino"),
    case("predict-k10", "predict", "-c", D, "-k", "10", "a casa"),
    case("predict-min-prob", "predict", "-c", D, "-k", "20", "--min-prob", "0.05", "a casa"),
    case("predict-min-prob-leaves-none", "predict", "-c", D, "--min-prob", "0.9", "a casa", "o menino"),
    case("predict-min-prob-leaves-none-json", "predict", "-c", D, "--min-prob", "0.9", "--format", "json", "a casa"),
    case("predict-show-unk", "predict", "-c", D, "--show-unk", "o"),
    case("predict-unknown-word", "predict", "-c", D, "o zzzxq"),
    case("predict-several", "predict", "-c", D, "o menino", "a casa", "ele"),
    case("predict-several-json", "predict", "-c", D, "--format", "json", "o menino", "a casa", "ele"),
    case("predict-several-tsv", "predict", "-c", D, "--format", "tsv", "-k", "3", "o menino", "a casa"),
    case("predict-stdin-dash", "predict", "-c", D, "-", stdin=PROMPTS),
    case("predict-stdin-no-prompt-json", "predict", "-c", D, "--format", "json", stdin=PROMPTS),
    case("predict-input-file", "predict", "-c", D, "--input", "prompts.txt"),
    case("predict-input-dash-tsv", "predict", "-c", D, "--input", "-", "--format", "tsv", "-k", "2", stdin=PROMPTS),
    case("predict-empty-prompt", "predict", "-c", D, ""),
    case("predict-sentence-end", "predict", "-c", D, "Ele saiu."),
    case("predict-after-comma", "predict", "-c", D, "o menino,"),
    case("predict-trailing-space", "predict", "-c", D, "o menino "),
    case("predict-errors-strict", "predict", "-c", D, "--input", "bad.txt"),
    case("predict-errors-strict-json", "predict", "-c", D, "--input", "bad.txt", "--format", "json"),
    case("predict-errors-replace", "predict", "-c", D, "--input", "bad.txt", "--errors", "replace"),
    # ------------------------------------------------------------------ predict --generate
    case("generate-seed", "predict", "-c", D, "-g", "12", "--seed", "1", "o menino"),
    case("generate-json", "predict", "-c", D, "-g", "8", "--seed", "3", "--format", "json", "o menino", "a casa"),
    case("generate-tsv", "predict", "-c", D, "-g", "8", "--seed", "3", "--format", "tsv", "o menino", "a casa"),
    case("generate-temperature", "predict", "-c", D, "-g", "12", "--seed", "1", "-t", "0.7", "o menino"),
    case("generate-temperature-0", "predict", "-c", D, "-g", "8", "-t", "0", "o menino"),
    case("generate-top-k-sampling", "predict", "-c", D, "-g", "12", "--seed", "2", "--top-k-sampling", "20", "o"),
    case("generate-top-p", "predict", "-c", D, "-g", "12", "--seed", "2", "--top-p", "0.9", "o menino"),
    case("generate-stop-at-eos", "predict", "-c", D, "-g", "40", "--seed", "1", "--stop-at-eos", "o menino", "a"),
    case("generate-show-unk", "predict", "-c", D, "-g", "10", "--seed", "4", "--show-unk", "o"),
    case("generate-stdin", "predict", "-c", D, "-g", "5", "--seed", "5", "-", stdin=PROMPTS),
    case("beam", "predict", "-c", D, "-g", "8", "--beam", "5", "o menino"),
    case("beam-json", "predict", "-c", D, "-g", "6", "--beam", "3", "--format", "json", "o menino", "a casa"),
    case("beam-tsv", "predict", "-c", D, "-g", "6", "--beam", "3", "--format", "tsv", "o menino"),
    case("beam-stop-at-eos", "predict", "-c", D, "-g", "20", "--beam", "3", "--stop-at-eos", "ele"),
    # ------------------------------------------------------------------ predict --complete
    case("complete", "predict", "-c", D, "--complete", "sentindo-se ind"),
    case("complete-k3", "predict", "-c", D, "--complete", "-k", "3", "o menino est"),
    case("complete-json", "predict", "-c", D, "--complete", "--format", "json", "o menino est"),
    case("complete-tsv", "predict", "-c", D, "--complete", "--format", "tsv", "o menino est", "a ca"),
    case("complete-no-accent-typed", "predict", "-c", D, "--complete", "voce"),
    case("complete-match-accents-miss", "predict", "-c", D, "--complete", "--match-accents", "voce"),
    case("complete-match-accents-hit", "predict", "-c", D, "--complete", "--match-accents", "você"),
    case("complete-no-match", "predict", "-c", D, "--complete", "o xyz"),
    case("complete-no-match-json", "predict", "-c", D, "--complete", "--format", "json", "o xyz"),
    case("complete-after-space", "predict", "-c", D, "--complete", "-k", "3", "o menino "),
    case("complete-min-prob", "predict", "-c", D, "--complete", "-k", "10", "--min-prob", "0.1", "o menino est"),
    # ------------------------------------------------------------------ score
    case("score-text", "score", "-c", D, "sentences.txt"),
    case("score-json", "score", "-c", D, "--format", "json", "sentences.txt"),
    case("score-tsv", "score", "-c", D, "--format", "tsv", "sentences.txt"),
    case("score-stdin", "score", "-c", D, stdin="o menino acordou\n\nzzzxq saiu.\n"),
    case("score-files-and-dash", "score", "-c", D, "other.txt", "-", "sentences.txt", stdin="a casa caiu\n"),
    case("score-errors-strict", "score", "-c", D, "bad.txt"),
    case("score-errors-replace-json", "score", "-c", D, "--errors", "replace", "--format", "json", "bad.txt"),
    # ------------------------------------------------------------------ fill
    case("fill-text", "fill", "-c", D, ONE_BLANK),
    case("fill-json", "fill", "-c", D, "--format", "json", ONE_BLANK),
    case("fill-tsv", "fill", "-c", D, "--format", "tsv", ONE_BLANK),
    case("fill-k3", "fill", "-c", D, "-k", "3", "a ___ caiu"),
    case("fill-two-blanks", "fill", "-c", D, TWO_BLANKS),
    case("fill-two-blanks-json", "fill", "-c", D, "--format", "json", TWO_BLANKS),
    case("fill-two-blanks-tsv", "fill", "-c", D, "--format", "tsv", "-k", "3", TWO_BLANKS),
    case("fill-shortlist", "fill", "-c", D, "--shortlist", "50", ONE_BLANK),
    case("fill-beam", "fill", "-c", D, "--beam", "2", TWO_BLANKS),
    case("fill-blank-mask", "fill", "-c", D, "--blank", "[MASK]", "a [MASK] caiu"),
    case("fill-show-unk", "fill", "-c", D, "--show-unk", "o ___ acordou"),
    case("fill-several", "fill", "-c", D, ONE_BLANK, "a ___ caiu"),
    case("fill-input-file", "fill", "-c", D, "--input", "lines.txt"),
    case("fill-stdin-json", "fill", "-c", D, "--input", "-", "--format", "json", stdin="a ___ caiu\n"),
    case("fill-bad-line", "fill", "-c", D, "--input", "badfill.txt"),
    case("fill-bad-line-json", "fill", "-c", D, "--input", "badfill.txt", "--format", "json"),
    case("fill-both", "fill", "-c", B, ONE_BLANK),
    case("fill-both-two-blanks-json", "fill", "-c", B, "--format", "json", TWO_BLANKS),
    case("fill-backward", "fill", "-c", K, ONE_BLANK),
    # ------------------------------------------------------------------ eval
    case("eval-text", "eval", "-c", D, "test.txt"),
    case("eval-json", "eval", "-c", D, "--format", "json", "test.txt"),
    case("eval-batch-size", "eval", "-c", D, "--batch-size", "10", "test.txt"),
    case("eval-max-ppl-pass", "eval", "-c", D, "--max-ppl", "150", "--format", "json", "test.txt"),
    case("eval-max-ppl-fail", "eval", "-c", D, "--max-ppl", "10", "test.txt"),
    case("eval-min-top5-pass", "eval", "-c", D, "--min-top5", "0.3", "test.txt"),
    case("eval-min-top5-fail-json", "eval", "-c", D, "--min-top5", "0.9", "--format", "json", "test.txt"),
    case("eval-fill", "eval", "-c", D, "--fill", "--fill-sample", "200", "test.txt"),
    case("eval-fill-json", "eval", "-c", D, "--fill", "--fill-sample", "50", "--format", "json", "test.txt"),
    case("eval-keystrokes", "eval", "-c", D, "--keystrokes", "--suggestions", "1", "test.txt"),
    case("eval-keystrokes-json", "eval", "-c", D, "--keystrokes", "--format", "json", "sentences.txt"),
    case("eval-stdin", "eval", "-c", D, stdin="O menino acordou cedo.\nA mãe trouxe um chá.\n"),
    case("eval-files-and-dash", "eval", "-c", D, "sentences.txt", "-", stdin="a casa caiu\n"),
    case("eval-both", "eval", "-c", B, "test.txt"),
    case("eval-both-fill-json", "eval", "-c", B, "--fill", "--fill-sample", "50", "--format", "json", "test.txt"),
    case("eval-backward", "eval", "-c", K, "test.txt"),
    case("eval-backward-json", "eval", "-c", K, "--format", "json", "sentences.txt"),
    # ------------------------------------------------------------------ tokenize, report
    case("tokenize-file", "tokenize", "-c", D, "sentences.txt"),
    case("tokenize-stdin", "tokenize", "-c", D, stdin="Às 14h30 ele já estava sentindo-se melhor. Zzzxq!\n"),
    case("tokenize-files-and-dash", "tokenize", "-c", D, "other.txt", "-", stdin="a casa caiu\n"),
    case("report-text", "report", D),
    case("report-json", "report", "--format", "json", D),
    case("report-both", "report", B),
    # ------------------------------------------------------------------ usage errors
    case("error-unknown-option", "predict", "-c", D, "--nope", "o"),
    case("error-unknown-command", "nope"),
    case("error-beam-without-generate", "predict", "-c", D, "--beam", "3", "o"),
    case("error-complete-with-generate", "predict", "-c", D, "--complete", "-g", "3", "o"),
    case("error-complete-show-unk", "predict", "-c", D, "--complete", "--show-unk", "o"),
    case("error-top-k-with-generate", "predict", "-c", D, "-g", "3", "-k", "2", "o"),
    case("error-temperature-without-generate", "predict", "-c", D, "-t", "0.5", "o"),
    case("error-seed-without-generate", "predict", "-c", D, "--seed", "1", "o"),
    case("error-k-zero", "predict", "-c", D, "-k", "0", "o"),
    case("error-bad-format", "predict", "-c", D, "--format", "xml", "o"),
    case("error-score-missing-file", "score", "-c", D, "nope.txt"),
    case("error-score-given-text", "score", "-c", D, "o menino acordou"),
    case("error-eval-min-top5-range", "eval", "-c", D, "--min-top5", "2", "test.txt"),
    case("error-checkpoint-not-found", "predict", "-c", "nothere", "o"),
    case("error-no-model", "predict", "o"),
    case("error-fill-no-blank", "fill", "-c", D, "sem lacuna"),
    case("error-train-missing-config", "train", "nope.yaml"),
    case("error-report-not-a-run", "report", "."),
]


# ---------------------------------------------------------------------------- the models


def train_models(folder: Path) -> tuple[dict[str, Path], list[dict]]:
    """Trains the three models under folder, each from a current folder of its own (the run writes
    .rnn/ there); returns their run folders and the train commands' records, normalised."""
    runs = {name: folder / name / "run" for name in MODELS}
    records = []
    for name, overrides in MODELS.items():
        (folder / name).mkdir()
        argv = ("train", "{config}", "--set", "checkpoint.dir={" + name + "}", *overrides, "--format", "json")
        with working_in(folder / name):
            records.append(normalise(run(Case(f"train-{name}", argv), runs), runs))
    return runs, records


def write_inputs(folder: Path) -> None:
    for name, data in INPUTS.items():
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    shutil.copyfile(REPO / "data" / "test.txt", folder / "test.txt")


# ---------------------------------------------------------------------------- running a case


def run(c: Case, runs: dict[str, Path]) -> dict:
    """Runs one case in-process (in the current folder); its record, before normalisation."""
    places = {"config": str(CONFIG)} | {name: str(folder) for name, folder in runs.items()}
    argv = [a.format(**places) for a in c.argv]
    result = CliRunner().invoke(main, argv, input=c.stdin, env={"RNN_CHECKPOINT": None}, prog_name="rnn")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"{c.id}: `rnn {' '.join(argv)}` raised instead of exiting:\n{crash}")
    return {
        "id": c.id,
        "argv": list(c.argv),
        "stdin": None if c.stdin is None else c.stdin.decode("utf-8", "backslashreplace"),
        "exit_code": result.exit_code,
        "stdout": result.stdout_bytes.decode("utf-8"),
        "stderr": result.stderr_bytes.decode("utf-8"),
    }


# time, speed and memory: the only figures of `train` and `report` that change from run to run
_MEASURED_KEYS = r'"(train_seconds|tokens_per_sec|session_seconds|seconds|rss_mb|peak_rss_mb)": [-+0-9.eE]+'
_EPOCH_SPEED = r"[\d,]+ tokens/s, [\d.]+ s"
_REPORT_HEADER = r"(?m)^(epoch .* lr)\s+tokens/s\s+seconds$"
_REPORT_ROW = r"(?m)^(\s*\d+(?:\s+\S+){4})\s+[\d,]+\s+[\d.]+"  # epoch, tokens, ppl, ppl, lr | speed, seconds


def normalise(record: dict, runs: dict[str, Path]) -> dict:
    """The record with the models' folders replaced by {name}, and for train and report the measured
    time, speed and memory by <measured>; nothing else."""
    out = dict(record)
    for key in ("stdout", "stderr"):
        text = record[key]
        for name, folder in sorted(runs.items(), key=lambda kv: -len(str(kv[1]))):
            text = text.replace(str(folder), "{" + name + "}")
        if record["argv"][0] in ("train", "report"):
            text = re.sub(_MEASURED_KEYS, r'"\1": "<measured>"', text)
            text = re.sub(_EPOCH_SPEED, "<measured> tokens/s, <measured> s", text)
            text = re.sub(_REPORT_HEADER, r"\1  tokens/s  seconds", text)
            text = re.sub(_REPORT_ROW, r"\1  <measured>  <measured>", text)
        out[key] = text
    return out


# ---------------------------------------------------------------------------- the machine


def fingerprint() -> dict:
    """What decides the last bits of the floats: numpy, the CPU, the BLAS and its thread count."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info

        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        blas_name = ", ".join(f"{p['internal_api']} {p['version']} {p.get('architecture', '')}".strip() for p in blas)
        threads = sum(p["num_threads"] for p in blas)
    except ImportError:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_name, threads = f"{info['name']} {info.get('version', '')}".strip(), None
    return {
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": cpu,
        "blas": blas_name,
        "blas_threads": threads,
    }


# ---------------------------------------------------------------------------- comparing


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _close(recorded: str, got: str) -> bool:
    """Numbers within a relative 1e-4, or (a figure with decimals) one unit in the last printed place."""
    a, b = float(recorded.replace(",", "")), float(got.replace(",", ""))
    if a == b:
        return True
    mantissa, _, exponent = recorded.lower().partition("e")
    last_place = 0.0
    if "." in mantissa:
        last_place = 10.0 ** (int(exponent or 0) - len(mantissa.split(".")[1]))
    return abs(a - b) <= max(1e-4 * max(abs(a), abs(b)), last_place * 1.000001)


def numbers_differ(recorded: str, got: str) -> str | None:
    """None when the texts agree up to the tolerance; else the first disagreement, in words."""
    parts_r, parts_g = _NUMBER.split(recorded), _NUMBER.split(got)
    nums_r, nums_g = _NUMBER.findall(recorded), _NUMBER.findall(got)
    if parts_r != parts_g or len(nums_r) != len(nums_g):
        return "the text around the numbers differs"
    for a, b in zip(nums_r, nums_g):
        if not _close(a, b):
            return f"{b} where the record has {a}"
    return None


def diff(recorded: str, got: str, what: str) -> str:
    lines = difflib.unified_diff(
        recorded.splitlines(keepends=True), got.splitlines(keepends=True), f"recorded {what}", f"now {what}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare(recorded: dict, got: dict, exact: bool) -> list[str]:
    """The differences between a recorded and a new record, each a readable paragraph; none if equal."""
    problems = []
    if recorded["argv"] != got["argv"] or recorded["stdin"] != got["stdin"]:
        problems.append(
            f"the case changed since it was recorded (argv {recorded['argv']} stdin {recorded['stdin']!r}): "
            "record again"
        )
    if recorded["exit_code"] != got["exit_code"]:
        problems.append(f"exit code {got['exit_code']}, recorded {recorded['exit_code']}")
    for key in ("stdout", "stderr"):
        if recorded[key] == got[key]:
            continue
        why = "not byte-identical" if exact else numbers_differ(recorded[key], got[key])
        if why:
            problems.append(f"{key}: {why}\n{diff(recorded[key], got[key], key)}")
    return problems


# ---------------------------------------------------------------------------- the tests


def read_record() -> tuple[dict, dict[str, dict]]:
    records = [json.loads(line) for line in OUTPUTS.read_text(encoding="utf-8").splitlines()]
    return json.loads(FINGERPRINT.read_text(encoding="utf-8")), {r["id"]: r for r in records}


@pytest.fixture(scope="session")
def golden(request, tmp_path_factory):
    """The models trained once, the folder the cases run in, the record, and the comparison mode."""
    machine = fingerprint()  # before anything sets the BLAS threads
    runs, trained = request.getfixturevalue("golden_models")
    cases_dir = tmp_path_factory.mktemp("golden-cases")
    write_inputs(cases_dir)
    recorded_machine, records = read_record()
    return {
        "runs": runs,
        "trained": {r["id"]: r for r in trained},
        "cases_dir": cases_dir,
        "records": records,
        "exact": machine == recorded_machine,
        "machine": machine,
        "recorded_machine": recorded_machine,
    }


def _check(golden, got: dict) -> None:
    recorded = golden["records"].get(got["id"])
    assert recorded is not None, f"{got['id']} is not in {OUTPUTS}: record again"
    exact = golden["exact"]
    problems = compare(recorded, got, exact)
    if exact:
        mode = "byte-for-byte: this machine is the recording machine"
    else:
        mode = (
            f"numbers within 1e-4 or one unit in the last place: this machine {golden['machine']} "
            f"is not the recording machine {golden['recorded_machine']}"
        )
    if problems:
        pytest.fail(f"`rnn {' '.join(got['argv'])}` differs from the record ({mode}):\n" + "\n".join(problems), False)


@pytest.mark.parametrize("name", list(MODELS))
def test_train_summary_is_unchanged(golden, name):
    _check(golden, golden["trained"][f"train-{name}"])


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_output_is_unchanged(golden, c, monkeypatch):
    monkeypatch.chdir(golden["cases_dir"])
    _check(golden, normalise(run(c, golden["runs"]), golden["runs"]))


def test_every_recorded_case_is_still_run(golden):
    ids = {c.id for c in CASES} | {f"train-{name}" for name in MODELS}
    assert sorted(set(golden["records"]) - ids) == [], "cases in the record but no longer run: record again"


@pytest.mark.parametrize(
    "recorded, got, agree",
    [
        ("é 0.062, da 0.049", "é 0.063, da 0.049", True),  # one unit in the last place
        ("é 0.062, da 0.049", "é 0.064, da 0.049", False),
        ("quente 7.6e-05", "quente 7.7e-05", True),
        ('"prob": 0.06179618719066342', '"prob": 0.0617965', True),  # relative 5e-6
        ('"prob": 0.06179618719066342', '"prob": 0.0619', False),  # relative 2e-3
        ("tokens       1298", "tokens       1299", False),  # counts have no last decimal to spare
        ("4,031 keystrokes", "4,031 keystrokes", True),
        ("é 0.062, da 0.049", "da 0.062, é 0.049", False),  # the words must not move
        ("0.000\tn/a", "0.000\t-", False),
    ],
)
def test_the_tolerant_comparison(recorded, got, agree):
    assert (numbers_differ(recorded, got) is None) == agree


# ---------------------------------------------------------------------------- recording


def record(force: bool) -> None:
    """Trains the models, runs every case and writes the record and the machine's fingerprint."""
    if OUTPUTS.exists() and not force:
        sys.exit(f"{OUTPUTS} exists: pass --force to overwrite it")
    machine = fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "models").mkdir()
        runs, records = train_models(Path(tmp) / "models")
        cases_dir = Path(tmp) / "cases"
        cases_dir.mkdir()
        write_inputs(cases_dir)
        with working_in(cases_dir):
            records += [normalise(run(c, runs), runs) for c in CASES]
    GOLDEN.mkdir(exist_ok=True)
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    OUTPUTS.write_text("".join(lines), encoding="utf-8")
    FINGERPRINT.write_text(json.dumps(machine, indent=2) + "\n", encoding="utf-8")
    print(f"recorded {len(records)} cases in {OUTPUTS} on {machine}")


if __name__ == "__main__":
    if "--record" not in sys.argv[1:]:
        sys.exit(__doc__)
    record(force="--force" in sys.argv[1:])
