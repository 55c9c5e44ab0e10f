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
