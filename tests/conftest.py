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
