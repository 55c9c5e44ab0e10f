"""Student shapes as plain data (TensorFlow-free, so the recipes can list them in ``--help``)."""

STUDENT_PRESETS = {
    # TinyBERT-4 (Jiao et al. 2020): 4 layers, hidden 312, 12 heads, FFN 1200 (RefBERT's student shape)
    "tinybert4": dict(num_layers=4, hidden_dim=312, num_heads=12, intermediate_dim=1200),
    # TinyBERT-6: BERT-base width, 6 layers
    "tinybert6": dict(num_layers=6, hidden_dim=768, num_heads=12, intermediate_dim=3072),
    # for tests and smoke runs only
    "tiny": dict(num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64),
}

REFERENCE_PROJECTIONS = ("linear", "linear_norm")  # P: d_teacher -> d_student (see RefBertStudent)
