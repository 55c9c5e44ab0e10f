"""Test helpers shared across test files (importable because pytest puts tests/ on sys.path via conftest.py)."""

import keras


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after ``at_step`` training batches (never if negative); counts batches seen."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step, self.seen = at_step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at_step:
            raise KeyboardInterrupt("simulated interruption")


def tiny_bert_backbone(
    num_layers=2, hidden_dim=32, intermediate_dim=64, vocabulary_size=30522, max_sequence_length=64, dropout=0.1
):
    """A small randomly initialised BERT encoder (2 heads, exact GELU) for tests that train or run a teacher."""
    from refbert_tf.models.backbone import BertBackbone

    return BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        dropout=dropout,
        hidden_activation="gelu",
    )


def run_model_saving_test(model, inputs, tmp_path, atol=1e-6, **call_kwargs):
    """Save ``model`` as ``.keras``, reload it, check that it gives the same outputs on ``inputs`` (to ``atol``)
    and return the reloaded model (keras-hub's ``run_model_saving_test``, for this project's models)."""
    import numpy as np

    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = np.asarray(model(inputs, **call_kwargs))
    np.testing.assert_allclose(np.asarray(loaded(inputs, **call_kwargs)), expected, atol=atol)
    return loaded


# a tiny task-distillation run: tiny student, one pass per stage, a 32-anchor bank, 32 tokens
TINY_DISTILL = dict(
    student="tiny",
    intermediate_epochs=1,
    prediction_epochs=1,
    batch_size=16,
    bank_tokens=4,
    max_anchors=32,
    num_buckets=128,
    max_seq_len=32,
)
