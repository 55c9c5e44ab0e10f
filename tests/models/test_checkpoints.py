import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refbert_tf.models.checkpoints import CheckpointError, default_teacher_dir, load_backbone, validate_hf_dir

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.json"


def test_default_teacher_is_found_through_the_installed_package(minilm_dir):
    assert minilm_dir == default_teacher_dir()
    assert "site-packages" in str(minilm_dir) or "dist-packages" in str(minilm_dir)
    info = validate_hf_dir(minilm_dir)
    assert info.lowercase and info.vocab_size == 30522


def test_minilm_weights_match_numpy_reference(minilm):
    """keras-hub's loaded backbone == an independent NumPy forward pass (tests/fixtures/make_minilm_reference.py)."""
    backbone, tokenizer, info = minilm
    ref = json.loads(FIXTURE.read_text())
    assert backbone.count_params() == 22_713_216
    ids = np.asarray([ref["token_ids"]], np.int32)
    out = backbone(
        {"token_ids": ids, "segment_ids": np.asarray([ref["segment_ids"]], np.int32), "padding_mask": np.ones_like(ids)}
    )
    np.testing.assert_allclose(np.asarray(out["sequence_output"])[0], ref["sequence_output"], atol=1e-4)
    np.testing.assert_allclose(np.asarray(out["pooled_output"])[0], ref["pooled_output"], atol=1e-4)
    # the fixture's ids are what our tokenizer produces for its text
    enc = tokenizer.encode(["the quick brown fox jumps over the lazy dog."], ["a second segment"])
    assert enc["token_ids"].to_list()[0] == ref["token_ids"]


def _copy_checkpoint(src: Path, dst: Path, skip=()):
    dst.mkdir()
    for f in ("config.json", "vocab.txt", "tokenizer_config.json"):
        if f not in skip:
            shutil.copy(src / f, dst / f)
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    return dst


def test_checkpoint_without_vocab(minilm_dir, tmp_path):
    ckpt = _copy_checkpoint(minilm_dir, tmp_path / "novocab", skip=("vocab.txt",))
    with pytest.raises(CheckpointError, match=rf"{ckpt}: no vocab.txt"):
        load_backbone(ckpt)


def test_vocab_size_disagrees_with_checkpoint(minilm_dir, tmp_path):
    ckpt = _copy_checkpoint(minilm_dir, tmp_path / "short", skip=("vocab.txt",))
    lines = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()[:1000]
    (ckpt / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"vocab.txt has 1000 tokens but .*config.json says vocab_size=30522"):
        load_backbone(ckpt)


def test_missing_directory_config_and_weights(minilm_dir, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_backbone(tmp_path / "empty")
    ckpt = _copy_checkpoint(minilm_dir, tmp_path / "noweights")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_backbone(ckpt)


def test_keras_hub_preset_directory(minilm_dir, tmp_path):
    import keras_hub

    tiny = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=64
    )
    tiny.save_to_preset(str(tmp_path / "preset"))
    keras_hub.models.BertTokenizer(vocabulary=str(minilm_dir / "vocab.txt"), lowercase=True).save_to_preset(
        str(tmp_path / "preset")
    )
    backbone, tokenizer, info = load_backbone(tmp_path / "preset", max_seq_len=128)
    assert info.kind == "keras_hub_dir" and info.lowercase and backbone.num_layers == 1
    assert tokenizer.max_seq_len == 64  # capped by the backbone's position embeddings
    for a, b in zip(tiny.weights, backbone.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
