"""Shared fixtures: the GLUE directory (../shared/glue_data or $GLUE_DIR) and the default MiniLM checkpoint."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    path = Path(os.environ.get("GLUE_DIR", ROOT.parent / "shared" / "glue_data"))
    if not (path / "SST-2" / "dev.tsv").is_file():
        pytest.fail(f"GLUE data not found at {path}: set GLUE_DIR or put ../shared/glue_data beside the repo")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from refbert_tf.models.checkpoints import default_teacher_dir

    return default_teacher_dir()


@pytest.fixture(scope="session")
def minilm():
    """(backbone, tokenizer, info) of the default teacher, loaded once per test session."""
    from refbert_tf.models.checkpoints import load_backbone

    return load_backbone()


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_dir):
    from refbert_tf.tokenization import BertWordPieceTokenizer

    return BertWordPieceTokenizer(minilm_dir / "vocab.txt", lowercase=True)


@pytest.fixture(scope="session")
def student_run(glue_dir, minilm_tokenizer, tmp_path_factory):
    """A saved tiny RefBERT student run directory, its SST-2 features and labels."""
    import shutil

    import keras
    from helpers import tiny_bert_backbone

    from refbert_tf.bank import build_bank
    from refbert_tf.data import read_glue_tsv
    from refbert_tf.io_utils import write_json
    from refbert_tf.models.student import build_student

    keras.utils.set_random_seed(0)
    tok = minilm_tokenizer
    train = read_glue_tsv("sst2", "train", glue_dir=glue_dir).take(120)
    feats = tok.encode(train.text_a, max_seq_len=32)
    bank = build_bank(
        tiny_bert_backbone(hidden_dim=24, intermediate_dim=48),
        feats,
        layer=-1,
        num_tokens=4,
        max_anchors=60,
        ignore_ids=(101, 102, 0),
        num_buckets=128,
        progress=False,
    )
    student = build_student("tiny", 2, tok.vocab_size, teacher_dim=24, bank=bank, max_sequence_length=64)
    run = tmp_path_factory.mktemp("run")
    student.save(run / "student.keras")
    shutil.copy(tok.vocab_path, run / "vocab.txt")
    write_json(
        run / "student.json",
        {
            "task": "sst2",
            "model": "refbert",
            "labels": ["0", "1"],
            "vocab_sha256": tok.vocab_sha256,
            "max_seq_len": 32,
            "lowercase": True,
            "bank": {"num_anchors": bank.num_anchors},
        },
    )
    return run, student, feats, train.labels


@pytest.fixture(scope="session")
def exported(student_run, tmp_path_factory):
    """The tiny student exported in all four variants (dev metrics on 40 examples): {variant: card}."""
    from refbert_tf import export

    run, _, feats, labels = student_run
    out = tmp_path_factory.mktemp("tflite")
    dev = {k: feats[k][:40] for k in ("token_ids", "segment_ids")}
    cards = export.export_student(
        run,
        out,
        export.VARIANTS,
        train_features=feats,
        dev_features=dev,
        dev_labels=labels[:40],
        num_representative=20,
        progress=False,
    )
    return {c["variant"]: c for c in cards}


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, glue_dir, minilm_tokenizer):
    """A tiny SST-2 teacher (hidden 24) fine-tuned on 32 examples, saved as <tmp>/teacher/sst2."""
    import keras
    from helpers import tiny_bert_backbone

    from refbert_tf.config import FinetuneConfig
    from refbert_tf.models.teacher import finetune_teacher

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "sst2"
    backbone = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)
    finetune_teacher(
        "sst2",
        path,
        config=FinetuneConfig(epochs=1, batch_size=16, max_seq_len=32),
        glue_dir=glue_dir,
        max_train_examples=32,
        backbone=backbone,
        tokenizer=minilm_tokenizer,
        verbose=0,
    )
    return path


@pytest.fixture(scope="session")
def sensitive_export(student_run, tmp_path_factory):
    """The tiny student with its classifier scaled up (its logits then move visibly with the input), exported as
    float32 with metadata and dev metrics on 40 examples: what a runtime feeds it shows in the logits. Its card."""
    import shutil

    from refbert_tf import export
    from refbert_tf.models.student import load_student

    run, _, feats, labels = student_run
    student, _ = load_student(run)
    kernel, bias = student.classifier.get_weights()
    student.classifier.set_weights([kernel * 3000.0, bias])
    out = tmp_path_factory.mktemp("sensitive")
    student.save(out / "student.keras")
    for name in ("student.json", "vocab.txt"):
        shutil.copy(run / name, out / name)
    dev = {k: feats[k][:40] for k in ("token_ids", "segment_ids")}
    (card,) = export.export_student(
        out, out / "tflite", ["float32"], dev_features=dev, dev_labels=labels[:40], progress=False
    )
    return card


@pytest.fixture(scope="session")
def tiny_main_job(tiny_teacher_dir, glue_dir, tmp_path_factory):
    """README command 1 in miniature (``helpers.TINY_MAIN_JOB``: distill the tiny student from the tiny teacher,
    export the dynamic-range int8 file), run once as a child process: ``{"work", "result", "stdout"}``."""
    import json

    from helpers import distill_tiny

    work = tmp_path_factory.mktemp("main_job")
    code, out, err = distill_tiny(work, tiny_teacher_dir, glue_dir)
    assert code == 0, err[-3000:]
    return {"work": work, "result": json.loads((work / "result.json").read_text()), "stdout": out}
