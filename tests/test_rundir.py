"""Run directories: a re-run with other settings is refused, and one process at a time holds a directory."""

import json
import os
import subprocess
import sys

import pytest

from refbert_tf.rundir import RunDirError, check_run_config, run_lock


def test_a_rerun_with_other_settings_is_refused_naming_the_fields(tmp_path):
    record = {"task": "sst2", "config": {"learning_rate": 1e-4, "seed": 42, "init": "auto"}}
    check_run_config(tmp_path, record)
    check_run_config(tmp_path, record)  # the same run: resumes
    with pytest.raises(RunDirError, match=r"config.learning_rate \(was 0.0001, now -1.0\)"):
        check_run_config(tmp_path, {**record, "config": {**record["config"], "learning_rate": -1.0}})
    assert json.loads((tmp_path / "run.json").read_text()) == record  # unchanged by the refused run


def test_a_run_finished_before_run_json_is_checked_against_its_card(tmp_path):
    (tmp_path / "student.json").write_text(json.dumps({"config": {"learning_rate": 1e-4, "init": "pruned"}}))
    asked = {"task": "sst2", "config": {"learning_rate": 1e-4, "init": "auto", "prediction_loss": "soft_ce"}}
    check_run_config(tmp_path, asked, finished_card=tmp_path / "student.json")  # auto resolved to pruned; new field
    other = tmp_path / "other"
    other.mkdir()
    (other / "student.json").write_text(json.dumps({"config": {"learning_rate": 1e-4}}))
    with pytest.raises(RunDirError, match="learning_rate"):
        check_run_config(other, {"config": {"learning_rate": 3e-5}}, finished_card=other / "student.json")


def test_a_second_process_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    with run_lock(tmp_path):
        code = f"from refbert_tf.rundir import run_lock\nwith run_lock({str(tmp_path)!r}): pass"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert other.returncode != 0 and f"is in use by process {os.getpid()}" in other.stderr
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    with run_lock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert "taking over" in capsys.readouterr().out


def test_partial_files_of_a_killed_writer_are_removed_when_the_run_directory_is_taken(tmp_path, capsys):
    """A writer killed mid-write leaves ``.partial-<pid>-...``: the next run removes it once it holds the lock; a
    live writer's partial file (this process's) is left alone; finished files are never touched."""
    from refbert_tf.io_utils import atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "run" / "bank" / f".partial-{int(dead.stdout)}-student-abc123.keras"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PK\x03\x04 half a zip")
    live = tmp_path / "run" / f".partial-{os.getpid()}-student-def456.keras"
    live.write_bytes(b"being written")
    (tmp_path / "run" / "student.keras").write_bytes(b"finished")
    with run_lock(tmp_path / "run"):
        pass
    assert not stale.exists() and live.exists() and (tmp_path / "run" / "student.keras").exists()
    assert f"removed {stale}" in capsys.readouterr().out
    with atomic_path(tmp_path / "out.json") as tmp:  # the temporary name carries the writer's pid
        assert tmp.name.startswith(f".partial-{os.getpid()}-out-") and tmp.suffix == ".json"
        tmp.write_text("{}")
    assert (tmp_path / "out.json").read_text() == "{}" and not tmp.exists()
