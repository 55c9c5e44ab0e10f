"""Fault injection: real recipe runs killed with SIGKILL at named points, re-run with the same command, compared
with a run never interrupted; and artifacts damaged on purpose, which a run must name instead of using.

Each killed run stops at a fault point (``refbert_tf.faults``: ``REFBERT_PAUSE_AT`` makes the process announce
the point on stdout and wait there) and the test then sends it SIGKILL, so the kill lands at exactly that point:
the end of a checkpoint interval of the teacher's fine-tuning or of either distillation stage, the reference-bank
build, the student saved before its card, an export staged or half in place. Every point is checked three ways:
the re-run's log says where it resumed, its final metrics and weights equal the uninterrupted run's, and at no
moment does an output path hold a file that is partial or that fails to load (only hidden ``.partial-<pid>-``
files of the killed writer, which the re-run removes).
"""

import json
import shutil
import signal
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import distill_tiny, run_recipe

pytestmark = pytest.mark.slow


def assert_every_file_complete(root: Path, killed_pid_ok=True, new_model_old_card_ok=False):
    """No file under ``root`` is partial or unreadable: JSON parses, ``.keras`` archives and ``.h5`` files open,
    ``.npy`` arrays load, ``.tflite`` files match their card's sha256. Hidden ``.partial-`` files are the killed
    writer's temporary names (allowed only when ``killed_pid_ok``). With ``new_model_old_card_ok`` (a kill between
    placing a model and its card), a ``.tflite`` may differ from its card: the runtime refuses that pair by the same
    check (``test_predict_refuses_a_model_its_card_does_not_describe``)."""
    import h5py

    from refbert_tf.io_utils import file_sha256

    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith(".partial-"):
            assert killed_pid_ok, f"{path}: a partial file left after a finished run"
            continue
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, path
        elif path.suffix == ".h5":
            with h5py.File(path, "r"):
                pass
        elif path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".tflite" and path.with_suffix(".json").is_file():
            card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            assert new_model_old_card_ok or card.get("file_sha256") == file_sha256(path), path


def student_weights(run_dir: Path) -> list:
    """The weights of ``student.keras`` in ``run_dir``, as NumPy arrays (TensorFlow loads in this process)."""
    from refbert_tf.models.student import load_student

    student, _ = load_student(run_dir)
    return [np.asarray(w) for w in student.weights]


@pytest.fixture(scope="module")
def uninterrupted(tiny_main_job):
    """The tiny main job run once without interruption (conftest): its work directory and result."""
    return tiny_main_job["work"], tiny_main_job["result"]


# a resumed distillation matches the uninterrupted run to float32 rounding, not bit for bit (docs/faults.md)
WEIGHT_TOLERANCE = 1e-5

# one run killed at every point in turn: (fault point, what the launch after the kill must log)
KILL_CHAIN = [
    ("bank:shard:1", "is incomplete (no bank.json: an interrupted run): building it again"),
    ("fit:backup_intermediate:2", "resuming backup_intermediate at interval 3 of 3"),
    ("fit:backup_prediction:1", "resuming backup_prediction at interval 2 of 3"),
    ("save:model:1", "prediction stage: finished by an earlier run"),
    ("export:placed:1", "prediction stage: finished by an earlier run"),
]


def test_main_job_killed_at_every_point_resumes_to_the_uninterrupted_result(
    uninterrupted, tiny_teacher_dir, glue_dir, tmp_path
):
    """The tiny main job killed with SIGKILL at each fault point in turn, each launch resuming the last one's work;
    the launch after the last kill finishes with the uninterrupted run's metrics and (to float32 rounding) weights."""
    reference_dir, reference = uninterrupted
    expected_log = None
    for point, next_log in KILL_CHAIN:
        code, out, _ = distill_tiny(tmp_path, tiny_teacher_dir, glue_dir, pause_at=point)
        assert code == -signal.SIGKILL, f"the run never reached {point}:\n{out[-2000:]}"
        assert expected_log is None or expected_log in out, (expected_log, out[-3000:])
        assert_every_file_complete(tmp_path, new_model_old_card_ok=point == "export:placed:1")
        expected_log = next_log
    run_dir = tmp_path / "student" / "sst2" / "refbert"
    code, out, err = distill_tiny(tmp_path, tiny_teacher_dir, glue_dir)
    assert code == 0, err[-3000:]
    assert expected_log in out, out[-3000:]
    assert_every_file_complete(tmp_path, killed_pid_ok=False)
    assert not list(run_dir.glob("backup_*")), "resume checkpoints left after a finished run"
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["metrics"] == reference["metrics"]
    assert result["export"]["variants"][0]["dev_metric"] == reference["export"]["variants"][0]["dev_metric"]
    diff = max(
        float(np.max(np.abs(ours - theirs)))
        for ours, theirs in zip(
            student_weights(run_dir), student_weights(reference_dir / "student" / "sst2" / "refbert")
        )
    )
    print(f"\nKILL-RESUME {len(KILL_CHAIN)} kills: dev accuracy {result['metrics']['accuracy']:.2f} (uninterrupted "
          f"{reference['metrics']['accuracy']:.2f}), max |weight difference| {diff:.2e}")  # fmt: skip
    assert diff <= WEIGHT_TOLERANCE


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory, minilm_dir):
    """A tiny keras-hub BERT preset directory (1 layer, hidden 16, the MiniLM vocabulary): a teacher checkpoint."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("preset")
    keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=64
    ).save_to_preset(str(path))
    keras_hub.models.BertTokenizer(vocabulary=str(minilm_dir / "vocab.txt"), lowercase=True).save_to_preset(str(path))
    return path


def test_teacher_finetune_killed_mid_fit_resumes_to_the_uninterrupted_teacher(tiny_preset, glue_dir, tmp_path):
    """``finetune_teacher.py`` (a tiny keras-hub preset, 32 examples, 2 steps, a checkpoint after each) killed after
    its first checkpoint and re-run: it resumes at interval 2 and ends with the uninterrupted run's weights and
    metrics, bit for bit."""
    from refbert_tf.models.teacher import load_teacher

    def finetune(out, pause_at=None):
        return run_recipe(
            ["recipes/finetune_teacher.py", "--task", "sst2", "--glue-dir", str(glue_dir), "--teacher-checkpoint",
             str(tiny_preset), "--max-train-examples", "32", "--epochs", "1", "--batch-size", "16",
             "--max-seq-len", "32", "--backup-every", "1", "--output-dir", str(out), "--results",
             str(out / "result.json")],
            pause_at,
        )  # fmt: skip

    code, _, err = finetune(tmp_path / "a")
    assert code == 0, err[-3000:]
    code, out, _ = finetune(tmp_path / "b", pause_at="fit:backup:1")
    assert code == -signal.SIGKILL, out[-2000:]
    assert_every_file_complete(tmp_path / "b")
    assert not (tmp_path / "b" / "sst2" / "teacher.json").exists()
    code, out, err = finetune(tmp_path / "b")
    assert code == 0, err[-3000:]
    assert "resuming backup at interval 2 of 2" in out
    assert_every_file_complete(tmp_path / "b", killed_pid_ok=False)
    a, b = (json.loads((tmp_path / x / "result.json").read_text()) for x in ("a", "b"))
    assert a["metrics"] == b["metrics"]
    wa, wb = (load_teacher(tmp_path / x / "sst2")[0].weights for x in "ab")
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not (tmp_path / "b" / "sst2" / "backup").exists()


# --- damaged artifacts: named, never used, never silently replaced ---------------------------------------------


def _truncate(path: Path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _snapshot(root: Path) -> dict:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def finished(uninterrupted, tmp_path):
    """A copy of the uninterrupted run's work directory (student, bank, .tflite, result), to damage."""
    work = tmp_path / "work"
    shutil.copytree(uninterrupted[0], work)
    return work


def test_a_rerun_that_finds_a_damaged_stage_file_ends_with_one_line_naming_it_and_changes_nothing(
    finished, tiny_teacher_dir, glue_dir
):
    """The recipe-level behaviour, once: a finished stage's weights cut in half; the re-run of the same command
    exits 2 with one line that names the file and the remedy, and no file changes."""
    path = finished / "student" / "sst2" / "refbert" / "stage_prediction.weights.h5"
    _truncate(path)
    before = _snapshot(finished)
    code, _, err = distill_tiny(finished, tiny_teacher_dir, glue_dir)
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"distill_glue.py: error: {path} cannot be read (" + err.strip().splitlines()[-1].split(" cannot be read (")[1]
    )
    assert err.strip().endswith("delete it to train the prediction stage again")
    assert _snapshot(finished) == before


def test_a_truncated_bank_shard_is_named_by_its_checksum(finished):
    from refbert_tf.bank import ReferenceBank
    from refbert_tf.io_utils import CorruptArtifactError

    bank_dir = finished / "student" / "sst2" / "refbert" / "bank"
    (shard,) = bank_dir.glob("representations-*.npy")
    _truncate(shard, 0.9)
    with pytest.raises(
        CorruptArtifactError, match=f"{shard} does not match the sha256 .* delete {bank_dir} and re-run"
    ):
        ReferenceBank.load(bank_dir)
    (bank_dir / "bank.json").write_text('{"layer": 2, "num_buck')
    with pytest.raises(CorruptArtifactError, match="bank.json is corrupt or cut short \\(line 1"):
        ReferenceBank.load(bank_dir)


def test_a_run_json_cut_in_half_is_named(finished):
    from refbert_tf.io_utils import CorruptArtifactError
    from refbert_tf.rundir import check_run_config

    run_dir = finished / "student" / "sst2" / "refbert"
    _truncate(run_dir / "run.json")
    with pytest.raises(CorruptArtifactError, match=f"{run_dir / 'run.json'} is corrupt or cut short"):
        check_run_config(run_dir, {"task": "sst2"})


def test_a_truncated_teacher_is_named(tiny_teacher_dir, tmp_path):
    from refbert_tf.io_utils import CorruptArtifactError
    from refbert_tf.models.teacher import load_teacher

    teacher = tmp_path / "sst2"
    shutil.copytree(tiny_teacher_dir, teacher)
    _truncate(teacher / "model.keras", 0.9)
    with pytest.raises(
        CorruptArtifactError, match="model.keras does not match the sha256 .* fine-tune the teacher again"
    ):
        load_teacher(teacher)


def test_a_damaged_student_is_named(finished):
    from refbert_tf.io_utils import CorruptArtifactError
    from refbert_tf.models.student import load_student

    run_dir = finished / "student" / "sst2" / "refbert"
    _truncate(run_dir / "student.keras")
    with pytest.raises(
        CorruptArtifactError, match="student.keras does not match the sha256 .* re-run the distillation"
    ):
        load_student(run_dir)
    _truncate(run_dir / "student.json")
    with pytest.raises(CorruptArtifactError, match="student.json is corrupt or cut short"):
        load_student(run_dir)


@pytest.mark.parametrize("damage", ["truncated model", "card cut in half"])
def test_predict_names_a_damaged_model_or_card(damage, finished, capsys):
    from refbert_tf import predict

    tflite = finished / "tflite" / "sst2_refbert_dynamic_int8.tflite"
    broken = tflite if damage == "truncated model" else tflite.with_suffix(".json")
    _truncate(broken, 0.7)
    before = _snapshot(finished)
    assert predict.main([str(tflite), "a fine film"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"refbert-predict: error: {broken}") and "re-export" in line, line
    assert _snapshot(finished) == before


def test_a_result_json_cut_in_half_is_named_by_the_summary(finished):
    """Named, with the remedy; the re-run of a finished run writes it whole again (the last launch of
    ``test_main_job_killed_at_every_point_resumes_to_the_uninterrupted_result`` is such a re-run)."""
    from refbert_tf.io_utils import CorruptArtifactError
    from refbert_tf.reports import glue_summary

    result = finished / "result.json"
    _truncate(result)
    (finished / "results" / "distill").mkdir(parents=True)
    shutil.copy(result, finished / "results" / "distill" / "sst2_refbert.json")
    with pytest.raises(CorruptArtifactError, match="sst2_refbert.json is corrupt or cut short .* re-run the command"):
        glue_summary(finished / "results", ["sst2"])
