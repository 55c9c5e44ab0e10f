"""Floating-point work of one inference, from the architecture: the yardstick for "how far from this CPU's limit".

Counts multiply-adds of the matrix products as 2 FLOPs each (the convention of GEMM peak figures) and nothing else:
the element-wise ops (LayerNorm, GELU, softmax, adds) are O(T H) per layer against the products' O(T H^2) and are
left out, so achieved GFLOP/s are a slight underestimate of the work done. For a BERT encoder of ``L`` blocks,
width ``H``, feed-forward width ``F``, ``T`` input tokens and ``C`` classes (Vaswani et al. 2017; Devlin et al.
2019 for the pooler and classifier):

* per block: query, key, value and output projections ``4 * 2 T H^2``; attention scores ``Q K^T`` and the
  weighted values ``P V``, ``2 * 2 T^2 H`` (summed over heads, ``H = heads * head_dim``); feed-forward
  ``2 * 2 T H F``;
* pooler ``2 H^2`` and classifier ``2 H C`` (on the first token only).

A RefBERT student's first block also projects its ``R`` reference tokens to keys and values (``2 * 2 R H^2``) and
its ``T`` queries attend to ``T + R`` keys (``2 * 2 T (T + R) H`` instead of ``2 * 2 T^2 H``); the projection ``P``
is folded into the bank at export and costs nothing. The in-graph retrieval is integer work (``O(T + nnz)``) and
is not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Architecture:
    """The shape of a BERT classifier, enough to count its FLOPs.

    Attributes:
        num_layers: Transformer blocks ``L``.
        hidden_dim: width ``H``.
        intermediate_dim: feed-forward width ``F``.
        num_classes: outputs ``C``.
        reference_tokens: ``R``, reference tokens the first block's keys and values gain (0: none).
    """

    num_layers: int
    hidden_dim: int
    intermediate_dim: int
    num_classes: int = 2
    reference_tokens: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def inference_flops(arch: Architecture, seq_len: int) -> int:
    """FLOPs of one inference at batch 1 and ``seq_len`` tokens (formula in the module docstring).

    Raises:
        ValueError: ``seq_len`` < 1 or a non-positive dimension.
    """
    if seq_len < 1 or min(arch.num_layers, arch.hidden_dim, arch.intermediate_dim, arch.num_classes) < 1:
        raise ValueError(f"need seq_len >= 1 and positive dimensions, got seq_len={seq_len}, {arch}")
    t, h, f, r = seq_len, arch.hidden_dim, arch.intermediate_dim, arch.reference_tokens
    block = 4 * 2 * t * h * h + 2 * 2 * t * t * h + 2 * 2 * t * h * f
    reference = 2 * 2 * r * h * h + 2 * 2 * t * r * h if r else 0
    head = 2 * h * h + 2 * h * arch.num_classes
    return arch.num_layers * block + reference + head


def architecture_of(model) -> Architecture:
    """The :class:`Architecture` of a Keras classifier: a :class:`refbert_tf.models.student.RefBertStudent` or a
    keras-hub ``BertTextClassifier`` (teacher, BERT-base shape).

    Raises:
        ValueError: a model of neither kind.
    """
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "num_layers"):  # keras-hub BertTextClassifier
        return Architecture(
            backbone.num_layers, backbone.hidden_dim, backbone.intermediate_dim, int(model.num_classes), 0
        )
    config = getattr(model, "config_values", None)
    if config is None:
        raise ValueError(f"cannot read the architecture of {type(model).__name__}: neither a student nor keras-hub")
    bank = config.get("bank_config") or {}
    return Architecture(
        int(config["num_layers"]),
        int(config["hidden_dim"]),
        int(config["intermediate_dim"]),
        int(config.get("num_classes", 2)),
        int(bank["num_tokens"]) * int(bank.get("top_k", 1)) if bank else 0,
    )
