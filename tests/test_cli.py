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


def test_options_are_built_from_the_config_fields_and_read_back_with_the_task_defaults(capsys):
    import argparse
    import dataclasses

    import pytest

    from refbert_tf.config import DISTILL_DEFAULTS, DistillConfig, GeneralDistillConfig, option_name

    parser = cli.add_config_args(argparse.ArgumentParser(), DistillConfig, DISTILL_DEFAULTS)
    flags = {a.option_strings[0] for a in parser._actions if a.option_strings}
    assert {option_name(f) for f in dataclasses.fields(DistillConfig)} <= flags
    args = parser.parse_args(["--bank-tokens", "16", "--no-reference", "--init-from-teacher"])
    config = cli.config_from_args(DistillConfig, args, DISTILL_DEFAULTS, "mrpc")
    assert (config.bank_tokens, config.use_reference, config.init) == (16, False, "teacher")
    assert (config.intermediate_epochs, config.prediction_epochs, config.seed) == (6.0, 4.0, 42)  # mrpc, default
    assert "note: --init-from-teacher is spelled --init teacher now" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.config_from_args(DistillConfig, parser.parse_args(["--temperature", "0"]), DISTILL_DEFAULTS, "mrpc")
    assert exit_info.value.code == 2 and "--temperature must be > 0, got 0.0" in capsys.readouterr().err
    general = cli.add_config_args(argparse.ArgumentParser(), GeneralDistillConfig)
    assert cli.config_from_args(GeneralDistillConfig, general.parse_args(["--tasks", "sst2", "rte"])).tasks == (
        "sst2",
        "rte",
    )
