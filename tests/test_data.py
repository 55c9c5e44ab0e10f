import numpy as np
import pytest

from refbert_tf import data
from refbert_tf.data import GlueDataError, get_task, load_tfds, make_dataset, read_glue_tsv

# row counts from ../shared/glue_data/README.md (header excluded)
EXPECTED_ROWS = {
    ("sst2", "train"): 67349,
    ("sst2", "dev"): 872,
    ("cola", "train"): 8551,
    ("cola", "dev"): 1043,
    ("mrpc", "train"): 3667,
    ("mrpc", "dev"): 408,
    ("rte", "train"): 2490,
    ("rte", "dev"): 277,
    ("stsb", "train"): 5749,
    ("stsb", "dev"): 1500,
}


@pytest.mark.parametrize("task,split", sorted(EXPECTED_ROWS))
def test_row_counts_match_the_glue_readme(glue_dir, task, split):
    ex = read_glue_tsv(task, split, glue_dir=glue_dir)
    assert len(ex) == EXPECTED_ROWS[(task, split)]
    assert len(ex.labels) == len(ex)
    assert ex.has_labels
    if ex.task.is_pair:
        assert len(ex.text_b) == len(ex)
    else:
        assert ex.text_b is None


def test_label_types_and_values(glue_dir):
    stsb = read_glue_tsv("stsb", "dev", glue_dir=glue_dir)
    assert stsb.labels.dtype == np.float32 and 0.0 <= stsb.labels.min() and stsb.labels.max() <= 5.0
    rte = read_glue_tsv("rte", "dev", glue_dir=glue_dir)
    assert set(np.unique(rte.labels)) == {0, 1}  # entailment, not_entailment
    sst = read_glue_tsv("SST-2", "dev", glue_dir=glue_dir)
    assert sst.text_a[0].startswith("it 's a charming and often affecting journey")
    assert sst.labels[0] == 1


def test_test_splits_are_unlabeled(glue_dir):
    for task in ("sst2", "cola", "mrpc", "stsb", "rte", "wnli", "qnli"):
        ex = read_glue_tsv(task, "test", glue_dir=glue_dir)
        assert len(ex) > 0 and not ex.has_labels


def test_glue_dir_from_environment(glue_dir, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    assert len(read_glue_tsv("mrpc", "dev")) == 408
    monkeypatch.delenv("GLUE_DIR")
    with pytest.raises(GlueDataError, match="GLUE_DIR"):
        read_glue_tsv("mrpc", "dev")


def test_all_glue_tasks_are_registered():
    assert set(data.TASKS) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert get_task("mnli").splits["dev_mismatched"] == "dev_mismatched"
    assert get_task("STS-B").is_regression and get_task("stsb").num_classes == 1
    assert get_task("mnli").num_classes == 3


def test_mnli_and_qqp_layouts(tmp_path):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
    )
    row = "0\t1\t2\tfiction\t(a)\t(b)\t(a)\t(b)\tThe cat sat.\tA cat sat.\tneutral\tx\tx\tx\tx\tentailment\n"
    (mnli / "dev_mismatched.tsv").write_text(header + row)
    ex = read_glue_tsv("mnli", "dev_mismatched", glue_dir=tmp_path)
    assert ex.text_a == ["The cat sat."] and ex.text_b == ["A cat sat."] and ex.labels.tolist() == [0]
    qqp = tmp_path / "QQP"
    qqp.mkdir()
    (qqp / "train.tsv").write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tHow?\t1\n")
    ex = read_glue_tsv("qqp", "train", glue_dir=tmp_path)
    assert ex.text_a == ["Why?"] and ex.labels.tolist() == [1]


def _write(tmp_path, task_dir, text):
    d = tmp_path / task_dir
    d.mkdir(exist_ok=True)
    (d / "train.tsv").write_text(text, encoding="utf-8")
    return d / "train.tsv"


def test_missing_column_names_file_and_line(tmp_path):
    path = _write(tmp_path, "RTE", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly one\n")
    with pytest.raises(GlueDataError) as err:
        read_glue_tsv("rte", "train", glue_dir=tmp_path)
    assert f"{path}:3" in str(err.value) and "columns" in str(err.value)


def test_missing_header_column(tmp_path):
    _write(tmp_path, "SST-2", "text\tlabel\nfine\t1\n")
    with pytest.raises(GlueDataError, match=r"train.tsv:1: header lacks column\(s\) \['sentence'\]"):
        read_glue_tsv("sst2", "train", glue_dir=tmp_path)


def test_non_numeric_label(tmp_path):
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    path = _write(tmp_path, "STS-B", header + "0\tg\tf\t2012\t1\ts\ts\tA man.\tA dog.\tfive\n")
    with pytest.raises(GlueDataError, match=rf"{path}:2: label 'five' is not a number"):
        read_glue_tsv("stsb", "train", glue_dir=tmp_path)


def test_unknown_class_label(tmp_path):
    path = _write(tmp_path, "SST-2", "sentence\tlabel\ngood\t1\nbad\tpositive\n")
    with pytest.raises(GlueDataError, match=rf"{path}:3: label 'positive' is not one of \['0', '1'\]"):
        read_glue_tsv("sst2", "train", glue_dir=tmp_path)


def test_empty_text_and_blank_line(tmp_path):
    path = _write(tmp_path, "SST-2", "sentence\tlabel\n \t1\n")
    with pytest.raises(GlueDataError, match=rf"{path}:2: empty text"):
        read_glue_tsv("sst2", "train", glue_dir=tmp_path)
    path = _write(tmp_path, "SST-2", "sentence\tlabel\ngood\t1\n\nbad\t0\n")
    with pytest.raises(GlueDataError, match=rf"{path}:3: blank line"):
        read_glue_tsv("sst2", "train", glue_dir=tmp_path)


def test_unknown_task_split_and_source(glue_dir):
    with pytest.raises(GlueDataError, match="unknown GLUE task 'sst3'.*sst2"):
        get_task("sst3")
    with pytest.raises(GlueDataError, match="unknown split 'validation'"):
        read_glue_tsv("sst2", "validation", glue_dir=glue_dir)
    with pytest.raises(GlueDataError, match="unknown data source"):
        data.load_glue("sst2", "dev", source="hub", glue_dir=glue_dir)
    with pytest.raises(GlueDataError, match="GLUE file not found"):
        read_glue_tsv("mnli", "train", glue_dir=glue_dir)


def test_tfds_source_gives_the_same_schema(monkeypatch):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    records = {"sentence1": [b"B second", b"A first"], "sentence2": [b"y", b"x"], "label": [1, 0], "idx": [1, 0]}

    def fake_load(name, split, data_dir=None, download=True):
        assert name == "glue/rte" and split == "validation"
        return tf.data.Dataset.from_tensor_slices(records)

    monkeypatch.setattr(tfds, "load", fake_load)
    ex = load_tfds("rte", "dev")
    assert ex.text_a == ["A first", "B second"] and ex.text_b == ["x", "y"]
    assert ex.labels.tolist() == [0, 1] and ex.labels.dtype == np.int32 and ex.source == "tfds:glue/rte"

    def failing_load(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", failing_load)
    with pytest.raises(GlueDataError, match="offline, use --source tsv"):
        load_tfds("rte", "dev")


@pytest.mark.parametrize("width", [None, 3])
def test_make_dataset_keeps_reference_index_with_its_example(glue_dir, minilm_tokenizer, width):
    """The offline reference of each training example must reach the student with that example (through the
    shuffle and the length buckets), or training falls back to in-graph retrieval, where an anchor is its own
    reference. (Before the fix, make_dataset dropped ``reference_index`` silently.)"""
    ex = read_glue_tsv("mrpc", "dev", glue_dir=glue_dir)
    feats = minilm_tokenizer.encode(ex.text_a, ex.text_b)
    n = len(ex)
    reference = (
        (1000 + np.arange(n, dtype=np.int32))
        if width is None
        else (1000 + np.arange(n * width, dtype=np.int32).reshape(n, width))
    )
    ds = make_dataset({**feats, "reference_index": reference}, np.arange(n), batch_size=16, shuffle=True, seed=3)
    seen = 0
    for x, y in ds:
        np.testing.assert_array_equal(x["reference_index"].numpy(), reference[y.numpy()])
        seen += len(y)
    assert seen == n
    with pytest.raises(ValueError, match="reference_index.*3 rows for 408 examples"):
        make_dataset({**feats, "reference_index": reference[:3]}, np.arange(n))


def test_make_dataset_buckets_and_keeps_every_example(glue_dir, minilm_tokenizer):
    ex = read_glue_tsv("mrpc", "dev", glue_dir=glue_dir)
    feats = minilm_tokenizer.encode(ex.text_a, ex.text_b)
    lengths = feats["token_ids"].row_lengths().numpy()
    ds = make_dataset(feats, np.arange(len(ex)), batch_size=16, shuffle=True, seed=1)
    seen = []
    for x, y in ds:
        assert x["token_ids"].shape == x["padding_mask"].shape == x["segment_ids"].shape
        mask = x["padding_mask"].numpy()
        np.testing.assert_array_equal(mask.sum(1), lengths[y.numpy()])
        assert x["token_ids"].shape[1] in (16, 32, 64, int(lengths.max()))  # padded to its bucket
        seen.extend(y.numpy().tolist())
    assert sorted(seen) == list(range(len(ex)))
    ordered = list(make_dataset(feats, np.arange(len(ex)), batch_size=50))
    assert np.concatenate([y.numpy() for _, y in ordered]).tolist() == list(range(len(ex)))


def test_text_corpus_is_the_training_text_of_the_tasks_present(glue_dir, minilm_tokenizer, tmp_path):
    from refbert_tf.data import load_text_corpus

    feats, counts = load_text_corpus(minilm_tokenizer, 64, ("cola", "stsb"), glue_dir=glue_dir)
    assert counts == {"cola": 8551, "stsb": 5749}  # training rows only: dev and test are never read
    assert int(feats["token_ids"].nrows()) == 8551 + 5749
    segments = feats["segment_ids"].row_lengths().numpy(), feats["segment_ids"].flat_values.numpy()
    assert segments[1].max() == 1  # STS-B rows are pairs: segment B is there
    stsb = read_glue_tsv("stsb", "train", glue_dir=glue_dir)
    first = minilm_tokenizer.encode(stsb.text_a[:1], stsb.text_b[:1], 64)["token_ids"][0].numpy()
    np.testing.assert_array_equal(feats["token_ids"][8551].numpy(), first)

    sub, sub_counts = load_text_corpus(minilm_tokenizer, 64, ("cola", "stsb"), glue_dir=glue_dir, max_examples=100)
    assert int(sub["token_ids"].nrows()) == 100 == sum(sub_counts.values()) and set(sub_counts) == {"cola", "stsb"}

    every, every_counts = load_text_corpus(minilm_tokenizer, 32, None, glue_dir=glue_dir, max_examples=10)
    assert set(every_counts) == {"cola", "sst2", "mrpc", "stsb", "rte", "wnli"}  # QNLI/MNLI/QQP train absent here
    with pytest.raises(GlueDataError, match="not found"):
        load_text_corpus(minilm_tokenizer, 32, ("mnli",), glue_dir=glue_dir)  # named explicitly: an error
    with pytest.raises(GlueDataError, match="no GLUE training split"):
        load_text_corpus(minilm_tokenizer, 32, None, glue_dir=tmp_path)
    with pytest.raises(GlueDataError, match="unknown GLUE task"):
        load_text_corpus(minilm_tokenizer, 32, ("sst3",), glue_dir=glue_dir)
