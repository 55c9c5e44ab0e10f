import numpy as np
import pytest

from refbert_tf.training import LinearWarmupDecay, make_adamw, teacher_config


def test_linear_warmup_then_linear_decay():
    s = LinearWarmupDecay(1e-4, total_steps=100, warmup_steps=10)
    values = [float(s(step)) for step in (0, 5, 10, 55, 100, 150)]
    np.testing.assert_allclose(values, [0.0, 5e-5, 1e-4, 5e-5, 0.0, 0.0], atol=1e-9)
    assert LinearWarmupDecay.from_config(s.get_config()).get_config() == s.get_config()


def test_adamw_skips_decay_on_bias_and_layernorm():
    import keras

    opt = make_adamw(1e-4, 10)
    dense = keras.layers.Dense(2)
    norm = keras.layers.LayerNormalization()
    dense.build((None, 3))
    norm.build((None, 2))
    opt.build(dense.weights + norm.weights)
    decayed = {v.name: opt._use_weight_decay(v) for v in dense.weights + norm.weights}
    assert decayed == {"kernel": True, "bias": False, "gamma": False, "beta": False}


def test_teacher_config_defaults_and_overrides():
    assert teacher_config("sst2").epochs == 0.5
    c = teacher_config("rte", epochs=1, learning_rate=None)
    assert c.epochs == 1 and c.learning_rate == teacher_config("rte").learning_rate
    with pytest.raises(TypeError):
        teacher_config("rte", not_a_field=1)


def test_predict_outputs_keeps_the_input_order_while_running_shortest_first():
    """Outputs come back in input order, equal to running each example alone (length-sorted batches, compiled)."""
    import keras
    import tensorflow as tf

    from refbert_tf.training import predict_outputs

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=37)
    ids = tf.ragged.constant([rng.integers(1, 50, size=n).tolist() for n in lengths], dtype=tf.int32)
    features = {"token_ids": ids, "segment_ids": tf.zeros_like(ids), "num_truncated": 0}
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    embedded = keras.layers.Embedding(50, 3)(token_ids)
    mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, "float32"), -1)
    pooled = keras.ops.sum(embedded * mask, axis=1) / keras.ops.sum(mask, axis=1)  # mean over real tokens
    model = keras.Model({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}, pooled)
    got = predict_outputs(model, features, batch_size=8)
    alone = np.concatenate([
        np.asarray(model({"token_ids": ids[i : i + 1].to_tensor(), "segment_ids": tf.zeros((1, n), tf.int32),
                          "padding_mask": tf.ones((1, n), tf.int32)}))
        for i, n in enumerate(lengths)
    ])  # fmt: skip
    np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)
    empty = {"token_ids": ids[:0], "segment_ids": ids[:0]}
    assert predict_outputs(model, empty).shape[0] == 0
