"""Student shapes as plain data (TensorFlow-free, so the recipes can list them in ``--help``)."""

STUDENT_PRESETS = {
    # TinyBERT-4 (Jiao et al. 2020): 4 layers, hidden 312, 12 heads, FFN 1200 (RefBERT's student shape)
    "tinybert4": dict(num_layers=4, hidden_dim=312, num_heads=12, intermediate_dim=1200),
    # narrower TinyBERT-4s for the size/latency curve (Zhao et al. 2021 shrink width with the vocabulary): the
    # teacher's 12 heads (head width 20 / 16), FFN 4x hidden, so a 12-head teacher such as MiniLM prunes into them
    "tinybert4_h240": dict(num_layers=4, hidden_dim=240, num_heads=12, intermediate_dim=960),
    "tinybert4_h192": dict(num_layers=4, hidden_dim=192, num_heads=12, intermediate_dim=768),
    # TinyBERT-6: BERT-base width, 6 layers
    "tinybert6": dict(num_layers=6, hidden_dim=768, num_heads=12, intermediate_dim=3072),
    # for tests and smoke runs only
    "tiny": dict(num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64),
}

REFERENCE_PROJECTIONS = ("linear", "linear_norm")  # P: d_teacher -> d_student (see RefBertStudent)
RETRIEVALS = ("lexical", "dense")  # how the reference is found (see RefBertStudent, DistillConfig.retrieval)
DENSE_ENTRIES = ("early", "late")  # where a dense reference enters the student (see RefBertStudent)
