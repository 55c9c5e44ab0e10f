"""TFLite Model Metadata in exported single-text classifiers, and a standard runtime (MediaPipe Tasks) reading it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv
from refbert_tf.export.metadata import (
    MetadataError,
    check_runtime_tokenizer,
    metadata_skip_reason,
    packed_files,
    verify_metadata,
    write_metadata,
)
from refbert_tf.io_utils import file_sha256


def _copy(card, tmp_path):
    """The exported file and its card, copied to ``tmp_path`` (so a test may break them)."""
    path = tmp_path / "model.tflite"
    shutil.copy(card["path"], path)
    shutil.copy(card["path"].replace(".tflite", ".json"), path.with_suffix(".json"))
    return path, json.loads(path.with_suffix(".json").read_text())


def test_every_exported_variant_packs_its_vocabulary_and_labels(exported):
    for variant, card in exported.items():
        files = packed_files(card["path"])
        assert set(files) == {"vocab.txt", "labels.txt"}, variant
        assert files["vocab.txt"] == card["vocab_sha256"]
        assert card["metadata"]["files"] == files and card["file_sha256"] == file_sha256(card["path"])
        assert verify_metadata(card["path"])["labels"] == ["negative", "positive"]


def test_a_card_that_does_not_match_its_packed_files_is_caught(exported, tmp_path):
    path, card = _copy(exported["dynamic_int8"], tmp_path)
    for broken, message in (
        ({"metadata": {**card["metadata"], "files": {**card["metadata"]["files"], "labels.txt": "0" * 64}}},
         "checksums do not match the packed files"),
        ({"vocab_sha256": "f" * 64}, "packed vocab.txt is not the card's vocabulary"),
        ({"labels": ["bad", "good"]}, "packed labels"),
    ):  # fmt: skip
        with pytest.raises(MetadataError, match=message):
            verify_metadata(path, {**card, **broken})
    no_metadata = tmp_path / "plain.tflite"
    no_metadata.write_bytes(b"TFL3" + bytes(100))
    assert packed_files(no_metadata) == {}
    with pytest.raises(MetadataError, match="carries no metadata"):
        verify_metadata(no_metadata, card)


def test_metadata_the_runtime_would_misread_is_refused_and_changes_nothing(exported, tmp_path, student_run):
    path, card = _copy(exported["dynamic_int8"], tmp_path)
    vocab = student_run[0] / "vocab.txt"
    before = file_sha256(path)
    with pytest.raises(MetadataError, match="a cased vocabulary"):
        write_metadata(path, {**card, "lowercase": False}, vocab)
    with pytest.raises(MetadataError, match="sentence-pair task"):
        write_metadata(path, {**card, "task": "mrpc"}, vocab)
    with pytest.raises(MetadataError, match="is not the vocabulary of"):
        write_metadata(path, {**card, "vocab_sha256": "0" * 64}, vocab)
    no_unk = tmp_path / "vocab.txt"
    no_unk.write_text("\n".join(t for t in vocab.read_text().splitlines() if t != "[UNK]") + "\n")
    with pytest.raises(MetadataError, match=r"needs \[UNK\]"):
        check_runtime_tokenizer(card, no_unk)
    assert file_sha256(path) == before
    assert metadata_skip_reason({"task": "stsb"}) and metadata_skip_reason({"task": "cola"}) is None


@pytest.mark.slow
def test_mediapipe_text_classifier_reads_the_file_as_refbert_predict_does(sensitive_export, glue_dir, tmp_path):
    """A client that is not this project's code: MediaPipe Tasks' TextClassifier tokenizes 60 real SST-2 dev
    sentences from the packed vocabulary and gets the logits refbert-predict gets."""
    from refbert_tf.export.clients import compare_with_mediapipe, mediapipe_classify
    from refbert_tf.export.toolenv import ToolError
    from refbert_tf.predict import load_predictor, predict_texts

    texts = list(read_glue_tsv("sst2", "dev", glue_dir=glue_dir).text_a[:60])
    theirs = mediapipe_classify(sensitive_export["path"], texts)
    runner, tokenizer, card = load_predictor(sensitive_export["path"])
    ours = np.stack([predict_texts(runner, tokenizer, card, [t])[0][0] for t in texts])
    scores = np.array([[row["scores"][label] for label in card["labels"]] for row in theirs])
    spread = float(np.std(ours[:, 1] - ours[:, 0]))
    assert spread > 1e-2  # the logits depend on the input, so equal logits mean equal inputs
    np.testing.assert_allclose(scores, ours, atol=1e-4 * max(1.0, float(np.abs(ours).max())))
    assert [row["label"] for row in theirs] == [card["labels"][int(i)] for i in ours.argmax(-1)]
    report = compare_with_mediapipe(sensitive_export["path"], texts[:20], np.zeros(20, int))
    assert report["agreement"] == 100.0 and report["disagreements"] == [] and report["max_abs_logit_diff"] < 1e-2
    assert set(report["accuracy"]) == {"refbert_predict", "mediapipe"} and report["median_ms"]["mediapipe"] > 0
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(open(sensitive_export["path"], "rb").read().split(b"PK\x03\x04")[0])  # metadata zip cut off
    with pytest.raises(ToolError, match="mediapipe_classify.py"):
        mediapipe_classify(plain, texts[:1])


@pytest.mark.slow
def test_pair_task_routes_records_what_mediapipe_says_and_scores_the_interpreter_route(
    sensitive_export, glue_dir, tmp_path
):
    """A pair-task file (the tiny student's, relabelled MRPC, exported without metadata as pair tasks are): MediaPipe
    is asked to load it and refuses; the interpreter route is scored on 20 real MRPC dev pairs."""
    from refbert_tf.export.clients import pair_task_routes

    model = tmp_path / "mrpc_refbert_float32.tflite"
    model.write_bytes(open(sensitive_export["path"], "rb").read().split(b"PK\x03\x04")[0])  # no metadata
    card = {**sensitive_export, "task": "mrpc", "labels": ["not_paraphrase", "paraphrase"]}
    card.update(file_sha256=file_sha256(model), metadata={"skipped": "mrpc is a sentence-pair task"})
    card.pop("path", None)
    model.with_suffix(".json").write_text(json.dumps(card))
    shutil.copy(Path(sensitive_export["path"]).parent / card["vocab_file"], tmp_path / card["vocab_file"])
    pairs = read_glue_tsv("mrpc", "dev", glue_dir=glue_dir).take(20)
    result = pair_task_routes(model, pairs.text_a, pairs.text_b, pairs.labels)
    assert result["task"] == "mrpc" and result["num_pairs"] == 20
    assert result["mediapipe"]["loads"] is False and result["mediapipe"]["error"], result
    assert set(result["interpreter"]["metrics"]) == {"accuracy", "f1"} and result["interpreter"]["median_ms"] > 0
