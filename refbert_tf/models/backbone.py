"""BERT encoder: keras-hub's ``BertBackbone`` with the feed-forward activation of the checkpoint it loads.

keras-hub's ``BertBackbone`` hard-codes the tanh approximation of GELU. Hugging Face BERT checkpoints with
``"hidden_act": "gelu"`` (the MiniLM teacher, BERT-base) were trained with the exact erf GELU (Hendrycks & Gimpel
2016, Eq. 1), and the approximation moves MiniLM's last hidden states by up to 2.3e-3 (measured against a NumPy
forward pass, tests/fixtures/make_minilm_reference.py). This subclass takes ``hidden_activation`` and keeps it
in its config, so a saved and reloaded model computes the same function.
"""

from __future__ import annotations

import keras
import keras_hub

HIDDEN_ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_approximate": lambda x: keras.activations.gelu(x, approximate=True),
}
# Hugging Face config.json "hidden_act" -> our name
HF_HIDDEN_ACT = {
    "gelu": "gelu",
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu_fast": "gelu_approximate",
}


@keras.saving.register_keras_serializable(package="refbert_tf")
class BertBackbone(keras_hub.models.BertBackbone):
    """keras-hub ``BertBackbone`` plus ``hidden_activation`` (``"gelu"`` exact or ``"gelu_approximate"``).

    Inputs ``token_ids``, ``segment_ids``, ``padding_mask``: int32 [B, T]. Outputs ``sequence_output``
    [B, T, hidden_dim] and ``pooled_output`` [B, hidden_dim]. Transformer blocks are ``transformer_layer_{i}``.

    Raises:
        ValueError: for an unknown ``hidden_activation``.
    """

    def __init__(self, *args, hidden_activation: str = "gelu_approximate", **kwargs):
        if hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {list(HIDDEN_ACTIVATIONS)}, got {hidden_activation!r}")
        super().__init__(*args, **kwargs)
        self.hidden_activation = hidden_activation
        for i in range(self.num_layers):
            # Dense.call reads self.activation at call time, so the functional graph picks this up
            self.get_layer(f"transformer_layer_{i}")._feedforward_intermediate_dense.activation = HIDDEN_ACTIVATIONS[
                hidden_activation
            ]

    def get_config(self):
        config = super().get_config()
        config["hidden_activation"] = self.hidden_activation
        return config
