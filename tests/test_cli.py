import re
import subprocess

from refbert_tf import cli


def test_code_version_names_the_checked_out_commit():
    version = cli.code_version()
    assert version is not None and re.search(r"[0-9a-f]{7,}(-dirty)?$", version), version


def test_code_version_is_none_without_git(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert cli.code_version() is None


def test_command_line_records_the_recipe_and_its_arguments(monkeypatch):
    monkeypatch.setattr("sys.argv", ["recipes/distill_glue.py"])
    assert (
        cli.command_line(["--task", "sst2", "--glue-dir", "a b"])
        == "python recipes/distill_glue.py --task sst2 --glue-dir 'a b'"
    )
