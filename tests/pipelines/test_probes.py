import numpy as np
import pytest

from refbert_tf.data import read_glue_tsv


def test_reference_ceiling_on_rte(glue_dir, minilm_tokenizer):
    """The replayed bank retrieval: every training example an anchor when M = 0, a vote of one anchor equal to the
    top-1 reference, the majority share of the real dev labels, and no label agreement for a regression task."""
    from refbert_tf.pipelines import reference_ceiling, reference_ceiling_markdown

    rows = reference_ceiling(
        "rte",
        minilm_tokenizer,
        num_buckets=(256,),
        max_anchors=(64, 0),
        vote=1,
        max_seq_len=64,
        glue_dir=glue_dir,
        train_sample=300,
    )
    assert [(r["num_buckets"], r["max_anchors"]) for r in rows] == [(256, 64), (256, 0)]
    assert rows[0]["num_anchors"] <= 64 and rows[1]["num_anchors"] == 2490
    dev = read_glue_tsv("rte", "dev", glue_dir=glue_dir)
    for r in rows:
        assert r["dev"]["majority_class"] == round(100 * np.bincount(dev.labels).max() / len(dev), 2)
        assert r["dev_vote"] == {
            "k": 1,
            "agreement": r["dev"]["agreement"],
            "majority_class": r["dev"]["majority_class"],
        }
        assert 0 <= r["train"]["agreement"] <= 100 and -1 <= r["train"]["mean_similarity"] < 1.0001
    assert "| rte | 256 | 2490 (all) |" in reference_ceiling_markdown(rows)
    with pytest.raises(ValueError, match="regression"):
        reference_ceiling("stsb", minilm_tokenizer, glue_dir=glue_dir)
