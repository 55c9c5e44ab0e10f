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
