"""FLOP count against a hand count, and the architecture read from real models."""

import pytest

from refbert_tf.benchmark.flops import Architecture, architecture_of, inference_flops


def test_hand_count_of_a_tiny_encoder():
    # L=2, H=4, F=8, C=2, T=3. Per block: projections 4*2*3*4*4 = 384, scores and weighted values
    # 2*2*3*3*4 = 144, feed-forward 2*2*3*4*8 = 384 -> 912; two blocks 1824; pooler 2*16 + classifier 2*4*2 = 48.
    assert inference_flops(Architecture(2, 4, 8, 2), 3) == 1872
    # R=2 reference tokens: keys/values of the references 2*2*2*4*4 = 128, queries over 2 more keys 2*2*3*2*4 = 96
    assert inference_flops(Architecture(2, 4, 8, 2, reference_tokens=2), 3) == 1872 + 224


def test_bad_dimensions_are_refused():
    with pytest.raises(ValueError, match="seq_len >= 1"):
        inference_flops(Architecture(2, 4, 8), 0)
    with pytest.raises(ValueError, match="positive dimensions"):
        inference_flops(Architecture(0, 4, 8), 3)


def test_architecture_of_student_and_keras_hub_classifier(student_run):
    import keras_hub
    from helpers import tiny_bert_backbone

    _, student, _, _ = student_run
    arch = architecture_of(student)
    config = student.config_values
    assert (arch.num_layers, arch.hidden_dim, arch.intermediate_dim) == (
        config["num_layers"],
        config["hidden_dim"],
        config["intermediate_dim"],
    )
    assert arch.reference_tokens == config["bank_config"]["num_tokens"] == 4
    backbone = tiny_bert_backbone(hidden_dim=24, intermediate_dim=48)
    classifier = keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=3, preprocessor=None)
    arch = architecture_of(classifier)
    assert (arch.hidden_dim, arch.intermediate_dim, arch.num_classes, arch.reference_tokens) == (24, 48, 3, 0)
    with pytest.raises(ValueError, match="cannot read the architecture"):
        architecture_of(object())
