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
