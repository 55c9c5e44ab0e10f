"""Mixed-vocabulary distillation end to end (refbert_tf/pipelines/mixed_vocabulary.py, distill_glue.py
--student-vocab-size): stage I on a tiny teacher, stage II, the export, and refbert-predict on the file."""

import json

import numpy as np
from helpers import TINY_MAIN_JOB, run_recipe

from refbert_tf.data import make_dataset, read_glue_tsv
from refbert_tf.distillation import TeacherFeatures
from refbert_tf.models.student import load_student
from refbert_tf.models.teacher import load_teacher
from refbert_tf.predict import load_predictor, predict_texts
from refbert_tf.tokenization import BertWordPieceTokenizer
from refbert_tf.training import predict_outputs


def test_student_vocabulary_main_job_trains_stage_one_then_distills_and_exports_on_it(
    tmp_path, tiny_teacher_dir, glue_dir
):
    work = tmp_path
    code, out, err = run_recipe(
        ["recipes/distill_glue.py", "--task", "sst2", "--glue-dir", str(glue_dir), "--no-finetune-teacher",
         "--teacher-dir", str(tiny_teacher_dir.parent), "--output-dir", str(work / "student"),
         "--tflite-dir", str(work / "tflite"), "--results", str(work / "result.json"), *TINY_MAIN_JOB,
         "--student-vocab-size", "400", "--embedding-dim", "16"],
    )  # fmt: skip
    assert code == 0, err[-4000:]
    stage1_dir = tiny_teacher_dir.parent.parent / f"{tiny_teacher_dir.parent.name}_vocab400" / "sst2"
    stage1 = json.loads((stage1_dir / "stage1_result.json").read_text())
    teacher, student_tok, meta = load_teacher(stage1_dir, "sst2")  # checks vocab.txt against its sha256
    assert 100 < student_tok.vocab_size <= 400 == stage1["config"]["student_vocab_size"]
    assert student_tok.vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert teacher.backbone.vocabulary_size == student_tok.vocab_size
    assert meta["mixed_vocabulary"]["vocabulary"]["sha256"] == student_tok.vocab_sha256
    assert (
        stage1["vocabulary"]["dev_pieces_per_word"]["student"] > stage1["vocabulary"]["dev_pieces_per_word"]["teacher"]
    )

    run_dir = work / "student_vocab400" / "sst2" / "refbert"
    student, card = load_student(run_dir)
    assert card["vocab_sha256"] == student_tok.vocab_sha256
    assert student.token_embedding.input_dim == student_tok.vocab_size
    # stage II: the teacher and the student read the same ids, so every layer loss aligns token by token
    dev = read_glue_tsv("sst2", "dev", glue_dir=glue_dir).take(16)
    batch = next(iter(make_dataset(student_tok.encode(dev.text_a, max_seq_len=32), None, batch_size=16)))
    t_hidden = TeacherFeatures(teacher)(batch)["hidden_states"]
    s_hidden = student.call_with_features(batch)["hidden_states"]
    assert t_hidden[0].shape[:2] == s_hidden[0].shape[:2] == tuple(batch["token_ids"].shape)

    tflite = work / "tflite_vocab400" / "sst2_refbert_dynamic_int8.tflite"
    export_card = json.loads(tflite.with_suffix(".json").read_text())
    assert (
        export_card["vocab_sha256"] == student_tok.vocab_sha256 and export_card["vocab_size"] == student_tok.vocab_size
    )
    runner, tokenizer, _ = load_predictor(tflite)
    assert tokenizer.vocab_sha256 == student_tok.vocab_sha256
    lite, _ = predict_texts(runner, tokenizer, export_card, list(dev.text_a))
    keras_logits = predict_outputs(student, BertWordPieceTokenizer(run_dir / "vocab.txt").encode(dev.text_a, None, 32))
    assert np.abs(lite - keras_logits).max() <= 0.05 * np.abs(keras_logits).max() + 1e-4
    result = json.loads((work / "result.json").read_text())
    assert result["export"]["variants"][0]["size_mb"] > 0
    # factorised embeddings (E 16 < H 32) on the small vocabulary, exported and checked above like the rest
    assert result["vocab_size"] == student_tok.vocab_size and result["config"]["embedding_dim"] == 16
    assert student.token_embedding.embeddings.shape == (student_tok.vocab_size, 16)
