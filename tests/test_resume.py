"""Resume checkpoints (refbert_tf.resume) and fault points (refbert_tf.faults), in one process."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import Interrupt

from refbert_tf import faults
from refbert_tf.io_utils import CorruptArtifactError
from refbert_tf.resume import latest_checkpoint
from refbert_tf.training import run_fit


def _model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8,))
    x = keras.layers.Dropout(0.5)(keras.layers.Dense(16, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dropout(0.3)(x)))
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=1).batch(8).repeat()


def test_a_fit_interrupted_and_resumed_ends_bit_for_bit_where_an_uninterrupted_one_does(tmp_path):
    """Weights, optimizer state, the batches seen and the dropout streams all resume: the same final weights."""
    whole = _model()
    run_fit(whole, _data(), intervals=4, steps_per_interval=3, backup_dir=tmp_path / "a", verbose=0)
    first = _model()
    with pytest.raises(KeyboardInterrupt):
        run_fit(first, _data(), 4, 3, tmp_path / "b", callbacks=[Interrupt(8)], verbose=0)
    assert latest_checkpoint(tmp_path / "b")[1] == 2  # checkpoints after steps 3 and 6; step 8 is lost
    resumed, counter = _model(), Interrupt(-1)
    history = run_fit(resumed, _data(), 4, 3, tmp_path / "b", callbacks=[counter], verbose=0)
    assert counter.seen == 6 and history.steps == 6 and int(resumed.optimizer.iterations) == 12
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not (tmp_path / "b").exists()  # deleted once training finished


def test_a_truncated_checkpoint_is_named_and_not_trained_on(tmp_path):
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        run_fit(model, _data(), 4, 3, tmp_path / "b", callbacks=[Interrupt(4)], verbose=0)
    path, _ = latest_checkpoint(tmp_path / "b")
    path.write_bytes(path.read_bytes()[:500])
    fresh = _model()
    with pytest.raises(CorruptArtifactError, match=f"{path} cannot be read .* delete it"):
        run_fit(fresh, _data(), 4, 3, tmp_path / "b", verbose=0)
    assert int(fresh.optimizer.iterations) == 0


def test_fault_point_spec(monkeypatch):
    assert faults.pause_spec("") is None and faults.pause_spec("bank:shard") == ("bank:shard", 1)
    assert faults.pause_spec("fit:backup_prediction:2") == ("fit:backup_prediction", 2)
    with pytest.raises(ValueError, match="REFBERT_PAUSE_AT"):
        faults.pause_spec("bank:shard:0")
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.reached("bank:shard")  # unset: returns at once
