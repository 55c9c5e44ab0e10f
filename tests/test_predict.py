"""refbert-predict on the tiny exported student: single text, pairs from stdin, a GLUE TSV, bad files."""

import io
import shutil
import sys

import numpy as np

from refbert_tf.predict import main


def test_one_text_and_batch_tsv_match_the_interpreter(exported, glue_dir, tmp_path, capsys):
    model = exported["float32"]["path"]
    assert main([model, "a gripping , funny film"]) == 0
    out = capsys.readouterr().out
    assert ("negative (" in out or "positive (" in out) and " ms" in out
    # 40 real SST-2 training rows as a GLUE TSV: refbert-predict's accuracy equals the card's interpreter figure
    rows = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[:41]
    tsv = tmp_path / "dev.tsv"
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main([model, "--batch", str(tsv), "--quiet"]) == 0
    out = capsys.readouterr().out
    expected = exported["float32"]["dev_metrics"]["accuracy"]
    assert f"dev accuracy {expected:.2f}" in out and "40 inputs" in out


def test_stdin_lines(exported, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("good movie\nterrible plot\n\nfine\n"))
    assert main([exported["dynamic_int8"]["path"], "--batch", "-"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("3 inputs")


def test_bad_models_give_clear_errors(exported, tmp_path, capsys):
    assert main([str(tmp_path / "missing.tflite"), "text"]) == 2
    assert "model file not found" in capsys.readouterr().err
    binary = tmp_path / "random.tflite"
    binary.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert main([str(binary), "text"]) == 2
    assert "is not a TFLite model" in capsys.readouterr().err
    no_card = tmp_path / "no_card.tflite"
    shutil.copy(exported["float32"]["path"], no_card)
    assert main([str(no_card), "text"]) == 2
    assert "no model card" in capsys.readouterr().err
    assert main([exported["float32"]["path"]]) == 2
    assert "give a text" in capsys.readouterr().err
