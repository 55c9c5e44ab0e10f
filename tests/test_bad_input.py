"""Bad input, one case per test (docs/bad_input.md is the table): each gives one clear line naming the file, line or
option, a known exception type or exit code 2, and leaves every file as it was."""

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from refbert_tf import cli, data
from refbert_tf.data import GlueDataError, get_task, read_glue_tsv
from refbert_tf.predict import main as predict

ROOT = Path(__file__).resolve().parents[1]


def snapshot(root: Path) -> dict:
    """``{relative path: sha256, or "dir"}`` of everything under ``root``: compared before and after each case."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def as_recipe(capsys, fn) -> str:
    """Run ``fn`` as a recipe's ``main`` under :func:`refbert_tf.cli.run`: it must end with exit code 2 and one
    line ``<program>: error: <message>`` on stderr. Returns the message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.run(fn)
    err = capsys.readouterr().err
    prefix = f"{os.path.basename(sys.argv[0])}: error: "
    assert exit_info.value.code == 2, err
    assert err.startswith(prefix) and err.count("\n") == 1 and err.endswith("\n"), err
    return err[len(prefix) : -1]


def predict_error(capsys, argv) -> str:
    """Run refbert-predict: exit code 2 and one line ``refbert-predict: error: <message>``. Returns the message."""
    capsys.readouterr()
    code = predict(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", (code, captured)
    assert captured.err.startswith("refbert-predict: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err[len("refbert-predict: error: ") : -1]


def usage_error(capsys, parse, argv) -> str:
    """An argparse usage error: exit code 2, the usage, then one ``error:`` line. Returns that line's message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    last = err.strip().splitlines()[-1]
    assert err.startswith("usage: ") and ": error: " in last, err
    return last.split(": error: ", 1)[1]


def sst2_tsv(root: Path, content: bytes, name: str = "train.tsv") -> Path:
    path = root / "SST-2" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# ------------------------------------------------------------------------------------------ task, GLUE directory


def test_unknown_task_ends_a_recipe_with_one_line(capsys):
    message = as_recipe(capsys, lambda: get_task("sst3"))
    assert message == ("unknown GLUE task 'sst3'; known tasks: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"), (
        message
    )


def test_a_glue_directory_that_does_not_exist_stops_the_recipe_before_any_write(tmp_path):
    missing, out, results = tmp_path / "nowhere", tmp_path / "teachers", tmp_path / "results.json"
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "recipes/finetune_teacher.py", "--task", "sst2", "--glue-dir", str(missing)]
        + ["--output-dir", str(out), "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"finetune_teacher.py: error: GLUE directory {missing} does not exist (from --glue-dir / $GLUE_DIR)"
    ], proc.stderr[-3000:]
    assert snapshot(tmp_path) == before


def test_an_unreadable_glue_directory_or_file_is_named(tmp_path, capsys, monkeypatch):
    path = sst2_tsv(tmp_path, b"sentence\tlabel\ngood\t1\n")
    before = snapshot(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    as_root = os.geteuid() == 0  # root reads any file: simulate the refusal the kernel gives other users
    with monkeypatch.context() as m:
        if as_root:
            m.setattr(data.os, "listdir", denied)
        else:
            os.chmod(tmp_path, 0)
        try:
            message = as_recipe(capsys, lambda: read_glue_tsv("sst2", "train", glue_dir=tmp_path))
        finally:
            os.chmod(tmp_path, 0o755)
    assert message == f"GLUE directory {tmp_path} cannot be read (Permission denied)"
    with monkeypatch.context() as m:
        if as_root:
            m.setattr(data, "open", denied, raising=False)  # the reader's open() (module global before builtins)
        else:
            os.chmod(path, 0)
        try:
            message = as_recipe(capsys, lambda: read_glue_tsv("sst2", "train", glue_dir=tmp_path))
        finally:
            os.chmod(path, 0o644)
    assert message == f"{path}: cannot read it (Permission denied)"
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------------------ TSV files


def test_a_row_with_an_extra_column_is_refused_at_its_line(tmp_path, capsys):
    path = sst2_tsv(tmp_path, b"sentence\tlabel\ngood\t1\na tab\tinside\t0\n")
    cola = tmp_path / "CoLA" / "train.tsv"
    cola.parent.mkdir()
    cola.write_bytes(b"gj04\t1\t\tThe cat sat .\ngj04\t0\t*\tThe\tcat .\n")
    before = snapshot(tmp_path)
    message = as_recipe(capsys, lambda: read_glue_tsv("sst2", "train", glue_dir=tmp_path))
    assert message == f"{path}:3: expected 2 tab-separated columns, got 3 (a tab inside a text?)"
    with pytest.raises(GlueDataError) as error:
        read_glue_tsv("cola", "train", glue_dir=tmp_path)
    assert str(error.value) == f"{cola}:2: expected 4 tab-separated columns, got 5 (a tab inside a text?)"
    assert snapshot(tmp_path) == before


def test_a_byte_order_mark_and_crlf_line_ends_read_as_plain_lf_utf8(tmp_path):
    rows = "sentence\tlabel\ngood film\t1\ncafé noir\t0\n"
    plain = read_glue_tsv("sst2", "train", path=sst2_tsv(tmp_path, rows.encode(), "plain.tsv"))
    variants = {
        "bom.tsv": b"\xef\xbb\xbf" + rows.encode(),
        "crlf.tsv": rows.replace("\n", "\r\n").encode(),
        "bom_crlf.tsv": b"\xef\xbb\xbf" + rows.replace("\n", "\r\n").encode(),
        "mixed.tsv": rows.replace("\n", "\r\n", 1).encode(),
    }
    paths = {name: sst2_tsv(tmp_path, content, name) for name, content in variants.items()}
    before = snapshot(tmp_path)
    for name, path in paths.items():
        ex = read_glue_tsv("sst2", "train", path=path)
        assert (ex.text_a, ex.labels.tolist()) == (plain.text_a, plain.labels.tolist()), name
    assert plain.text_a == ["good film", "café noir"] and plain.labels.tolist() == [1, 0]
    assert snapshot(tmp_path) == before


def test_bytes_that_are_not_utf8_are_named_by_file_and_line(tmp_path, capsys, exported):
    path = sst2_tsv(tmp_path, b"sentence\tlabel\ngood\t1\ncaf\xe9 noir\t0\n")  # Latin-1, not UTF-8
    lines = tmp_path / "texts.txt"
    lines.write_bytes(b"good\nbad \xff\xfe\n")
    model = exported["float32"]["path"]
    before = snapshot(tmp_path)
    expected = f"{path}:3: not UTF-8 text (byte 0xe9 at byte 4 of the line); save the file as UTF-8"
    assert as_recipe(capsys, lambda: read_glue_tsv("sst2", "train", glue_dir=tmp_path)) == expected
    assert predict_error(capsys, [model, "--batch", str(path)]) == expected
    assert predict_error(capsys, [model, "--batch", str(lines)]) == (
        f"{lines}:2: not UTF-8 text (byte 0xff at byte 5 of the line); save the file as UTF-8"
    )
    assert snapshot(tmp_path) == before


def test_an_empty_file_and_a_header_only_file_have_no_examples(tmp_path, capsys, exported):
    empty = sst2_tsv(tmp_path, b"", "empty.tsv")
    header = sst2_tsv(tmp_path, b"sentence\tlabel\r\n", "header.tsv")
    cola = tmp_path / "CoLA" / "train.tsv"
    cola.parent.mkdir()
    cola.write_bytes(b"")
    model = exported["float32"]["path"]
    before = snapshot(tmp_path)
    assert as_recipe(capsys, lambda: read_glue_tsv("sst2", "dev", path=empty)) == (
        f"{empty}: empty file, expected a header row"
    )
    assert as_recipe(capsys, lambda: read_glue_tsv("sst2", "dev", path=header)) == (
        f"{header}: no examples after the header row"
    )
    assert as_recipe(capsys, lambda: read_glue_tsv("cola", "train", glue_dir=tmp_path)) == (
        f"{cola}: no examples (empty file)"
    )
    assert predict_error(capsys, [model, "--batch", str(header)]) == f"{header}: no examples after the header row"
    assert predict_error(capsys, [model, "--batch", str(empty)]) == f"no input lines in {empty}"
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------------------- texts


@pytest.mark.parametrize("text", ["", "   ", " \t\n ", "\x00\x07\x1b", "\u200b\ufeff", "\u2028 \u00a0"])
def test_a_text_with_nothing_to_classify_is_refused(exported, capsys, text):
    model = exported["float32"]["path"]
    message = predict_error(capsys, [model, text])
    assert message == "the text is empty or only whitespace and control characters: nothing to classify"


def test_a_line_with_nothing_to_classify_is_named_in_a_batch(exported, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("good movie\n\x00\x07\nfine\n"))
    message = predict_error(capsys, [exported["float32"]["path"], "--batch", "-"])
    assert message == (
        "input 2 (text) of standard input is empty or only whitespace and control characters: nothing to classify"
    )


def _described(capsys, argv) -> str:
    """refbert-predict's answer for one text, without its latency."""
    capsys.readouterr()
    assert predict(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].endswith(" ms"), out
    return out[0].rsplit("\t", 1)[0]


def test_control_characters_inside_a_text_are_dropped_as_by_the_checkpoints_tokenizer(exported, capsys):
    model = exported["float32"]["path"]
    assert _described(capsys, [model, "a good\x00 movie\x07\x1b"]) == _described(capsys, [model, "a good movie"])


def test_a_100000_character_text_is_truncated_to_the_cards_length(exported, capsys, tmp_path):
    model = exported["float32"]["path"]
    words = [f"word{i % 97}" for i in range(20000)]
    text = " ".join(words)[:99_999] + "."
    assert len(text) == 100_000
    # max_seq_len 32: [CLS], the first 30 tokens, [SEP]; the first 100 words hold far more than 30 tokens
    assert _described(capsys, [model, text]) == _described(capsys, [model, " ".join(words[:100])])
    path = sst2_tsv(tmp_path, f"sentence\tlabel\n{text}\t1\n".encode())
    assert read_glue_tsv("sst2", "train", path=path).text_a == [text]


# ------------------------------------------------------------------------------- checkpoints, teachers, students


def test_a_teacher_directory_whose_vocabulary_changed_is_refused(tiny_teacher_dir, tmp_path, capsys):
    from refbert_tf.models.teacher import TeacherMismatchError, load_teacher

    teacher = tmp_path / "sst2"
    shutil.copytree(tiny_teacher_dir, teacher)
    vocab = (teacher / "vocab.txt").read_text(encoding="utf-8").splitlines()
    (teacher / "vocab.txt").write_text("\n".join(vocab[:1000]) + "\n", encoding="utf-8")  # another size
    before = snapshot(tmp_path)
    with pytest.raises(TeacherMismatchError):
        load_teacher(teacher)
    assert as_recipe(capsys, lambda: load_teacher(teacher)) == (
        f"{teacher / 'vocab.txt'} does not match the sha256 recorded in {teacher / 'teacher.json'}: "
        "it is not the vocabulary the teacher was fine-tuned with"
    )
    assert snapshot(tmp_path) == before


def test_a_student_directory_without_weights_is_refused_by_the_export(tmp_path, capsys):
    from refbert_tf.pipelines import export_glue_student

    run = tmp_path / "sst2" / "refbert"
    run.mkdir(parents=True)
    (run / "student.json").write_text("{}", encoding="utf-8")
    before = snapshot(tmp_path)
    message = as_recipe(capsys, lambda: export_glue_student("sst2", run, tmp_path / "tflite"))
    assert message == (
        f"no distilled student in {run} (missing student.keras, vocab.txt); run recipes/distill_glue.py first"
    )
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------------ reference bank


@pytest.fixture(scope="module")
def saved_bank(glue_dir, minilm_tokenizer, tmp_path_factory):
    """A tiny SST-2 bank saved by ``load_or_build_bank`` as a distillation run does: (teacher, features, config,
    bank directory)."""
    import keras
    from helpers import tiny_bert_backbone

    from refbert_tf.bank import load_or_build_bank
    from refbert_tf.config import DistillConfig

    keras.utils.set_random_seed(0)
    teacher = tiny_bert_backbone(num_layers=2, hidden_dim=24, intermediate_dim=48)
    feats = minilm_tokenizer.encode(read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(48).text_a, None, 32)
    config = DistillConfig(bank_layer=1, bank_tokens=4, max_anchors=16, num_buckets=128)
    bank_dir = tmp_path_factory.mktemp("bank") / "bank"
    load_or_build_bank(bank_dir, teacher, feats, minilm_tokenizer, config, "sst2", "teacher-a", progress=False)
    return teacher, feats, config, bank_dir


@pytest.mark.parametrize("other", ["teacher", "vocabulary", "layer"])
def test_a_bank_of_another_teacher_vocabulary_or_layer_is_refused(
    saved_bank, minilm_tokenizer, tmp_path, capsys, other
):
    import dataclasses

    from refbert_tf.bank import BankError, load_or_build_bank
    from refbert_tf.tokenization import BertWordPieceTokenizer

    teacher, feats, config, bank_dir = saved_bank
    tokenizer, teacher_id = minilm_tokenizer, "teacher-a"
    if other == "teacher":
        teacher_id = "teacher-b"
    elif other == "vocabulary":
        vocab = tmp_path / "vocab.txt"
        vocab.write_bytes(minilm_tokenizer.vocab_path.read_bytes() + b"[extra]\n")
        tokenizer = BertWordPieceTokenizer(vocab)
    else:
        config = dataclasses.replace(config, bank_layer=2)
    before = snapshot(bank_dir)

    def reuse():
        return load_or_build_bank(bank_dir, teacher, feats, tokenizer, config, "sst2", teacher_id, progress=False)

    with pytest.raises(BankError):
        reuse()
    message = as_recipe(capsys, reuse)
    if other == "teacher":
        assert (
            message == f"{bank_dir} was built with teacher='teacher-a', but this run uses 'teacher-b': rebuild the bank"
        )
    elif other == "vocabulary":
        assert message == (
            f"{bank_dir} was built with vocab_sha256={minilm_tokenizer.vocab_sha256!r}, but this run uses "
            f"{tokenizer.vocab_sha256!r}: rebuild the bank"
        )
    else:
        assert message.startswith(f"{bank_dir} was built with {{'layer': 1, ") and "asks for {'layer': 2, " in message
        assert message.endswith(": pass another --bank-dir or delete it")
    assert snapshot(bank_dir) == before


# ------------------------------------------------------------------------------------------------- .tflite files


@pytest.fixture
def model_copy(exported, tmp_path):
    """The exported float32 file, its card and vocabulary copied into ``tmp_path/model``: its path."""
    src = Path(exported["float32"]["path"])
    card = json.loads(src.with_suffix(".json").read_text(encoding="utf-8"))
    out = tmp_path / "model"
    out.mkdir()
    for name in (src.name, src.with_suffix(".json").name, card["vocab_file"]):
        shutil.copy(src.parent / name, out / name)
    return out / src.name


@pytest.mark.parametrize("card", ["with its checksum", "without a checksum"])
def test_a_truncated_tflite_file_is_refused(model_copy, card):
    """Cut in half: refused by the card's ``file_sha256`` before LiteRT sees it; a card written before the checksum
    existed leaves it to LiteRT's flatbuffer verifier."""
    content = model_copy.read_bytes()
    model_copy.write_bytes(content[: len(content) // 2])
    if card == "without a checksum":
        path = model_copy.with_suffix(".json")
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "file_sha256"}))
    before = snapshot(model_copy.parent)
    # in a child process: a bad flatbuffer must not be able to take the test session down with it
    proc = subprocess.run(
        [sys.executable, "-m", "refbert_tf.predict", str(model_copy), "good"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("refbert-predict: error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    expected = (
        f"{model_copy} is not the file its card {model_copy.stem}.json describes (sha256 differs: truncated, or "
        "replaced by an export that did not finish); re-export it with recipes/export_tflite.py"
        if card == "with its checksum"
        else f"{model_copy}: the LiteRT interpreter cannot load it: The model is not a valid Flatbuffer buffer"
    )
    assert errors == [f"refbert-predict: error: {expected}"], errors
    assert snapshot(model_copy.parent) == before


def test_a_tflite_of_another_task_is_refused_for_that_tasks_input(model_copy, glue_dir, capsys):
    model = str(model_copy)
    mrpc = glue_dir / "MRPC" / "dev.tsv"
    message = predict_error(capsys, [model, "--batch", str(mrpc)])
    assert message.startswith(f"{mrpc}:1: header lacks column(s) ['sentence', 'label']; header is ['Quality',")
    assert message.endswith(f"(the model {model} reads sst2 TSVs)")
    assert predict_error(capsys, [model, "The cat sat.", "A cat sat."]) == (
        f"{model} is a sst2 model: it classifies one text, not a pair"
    )
    card_path = model_copy.with_suffix(".json")  # the same file under a pair task's card
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "task": "mrpc"}), encoding="utf-8")
    before = snapshot(model_copy.parent)
    assert predict_error(capsys, [model, "The cat sat."]) == (
        f"{model} is a mrpc model: it classifies sentence pairs; give two texts "
        "(with --batch: TAB-separated lines, or the task's GLUE TSV)"
    )
    assert snapshot(model_copy.parent) == before


def test_a_tflite_whose_vocabulary_does_not_match_its_card_is_refused(model_copy, capsys):
    card = json.loads(model_copy.with_suffix(".json").read_text(encoding="utf-8"))
    vocab = model_copy.parent / card["vocab_file"]
    vocab.write_bytes(vocab.read_bytes() + b"[extra]\n")
    before = snapshot(model_copy.parent)
    assert predict_error(capsys, [str(model_copy), "good"]) == (
        f"{vocab} does not match the vocabulary checksum in the card of {model_copy}"
    )
    assert snapshot(model_copy.parent) == before
    vocab.unlink()
    before = snapshot(model_copy.parent)
    assert predict_error(capsys, [str(model_copy), "good"]) == f"vocabulary file not found: {vocab}"
    assert snapshot(model_copy.parent) == before


# ------------------------------------------------------------------------------------------- numeric options


@pytest.mark.parametrize(
    "value, message", [("0", "must be >= 1, got 0"), ("-2", "must be >= 1, got -2"), ("x", "not an integer: 'x'")]
)
def test_non_positive_threads_are_a_usage_error(exported, capsys, value, message):
    got = usage_error(capsys, predict, [exported["float32"]["path"], "good", "--threads", value])
    assert got == f"argument --threads: {message}"


@pytest.mark.parametrize(
    "flag, value",
    [("--max-train-examples", "0"), ("--max-train-examples", "-3"), ("--cpu-devices", "0"), ("--cpu-devices", "-1")],
)
def test_non_positive_data_and_strategy_options_are_usage_errors(capsys, flag, value):
    sys.path.insert(0, str(ROOT / "recipes"))
    try:
        from distill_glue import parse_args as distill_args
        from finetune_teacher import parse_args as finetune_args
    finally:
        sys.path.remove(str(ROOT / "recipes"))
    for parse in (distill_args, finetune_args):
        got = usage_error(capsys, parse, ["--task", "sst2", flag, value])
        assert got == f"argument {flag}: must be >= 1, got {int(value)}"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numeric_options_are_refused_naming_the_option(capsys, value):
    from refbert_tf.config import DISTILL_DEFAULTS, DistillConfig, FinetuneConfig

    parser = cli.add_config_args(argparse.ArgumentParser(), DistillConfig, DISTILL_DEFAULTS)
    for flag in ("--learning-rate", "--temperature", "--warmup-ratio", "--weight-decay", "--intermediate-epochs"):
        with pytest.raises(SystemExit) as exit_info:
            cli.config_from_args(DistillConfig, parser.parse_args([f"{flag}={value}"]), DISTILL_DEFAULTS, "sst2")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert f"error: {flag} must be a finite number, got {float(value)}" in err
    with pytest.raises(ValueError, match=r"--epochs must be a finite number"):
        FinetuneConfig(epochs=float(value))


def test_non_positive_numeric_config_options_are_refused_naming_the_option(capsys):
    from refbert_tf.config import DISTILL_DEFAULTS, DistillConfig

    parser = cli.add_config_args(argparse.ArgumentParser(), DistillConfig, DISTILL_DEFAULTS)
    for flag, value, message in (
        ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
        ("--batch-size", "-8", "--batch-size must be >= 1, got -8"),
        ("--max-seq-len", "0", "--max-seq-len must be >= 8, got 0"),
        ("--learning-rate", "0", "--learning-rate must be > 0, got 0.0"),
        ("--temperature", "-1", "--temperature must be > 0, got -1.0"),
        ("--max-anchors", "0", "--max-anchors must be >= 1, got 0"),
        ("--num-buckets", "-1", "--num-buckets must be >= 1, got -1"),
        ("--top-k", "0", "--top-k must be >= 1, got 0"),
        ("--backup-every", "0", "--backup-every must be >= 1, got 0"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.config_from_args(DistillConfig, parser.parse_args([flag, value]), DISTILL_DEFAULTS, "sst2")
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and err.endswith(f"error: {message}\n"), err
