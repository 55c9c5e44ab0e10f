"""End-to-end jobs behind the recipes, one module per job:

- :mod:`~refbert_tf.pipelines.task_distillation`: :func:`distill_glue`, the main job.
- :mod:`~refbert_tf.pipelines.general_distillation`: :func:`general_distill`.
- :mod:`~refbert_tf.pipelines.export_job`: :func:`export_glue_student`.
- :mod:`~refbert_tf.pipelines.probes`: :func:`pruning_probe`, :func:`reference_report`, :func:`reference_ceiling`.

Reports of finished runs are in :mod:`refbert_tf.reports` and the run configurations in :mod:`refbert_tf.config`
(both TensorFlow-free); their names are importable from here too, as they were when this was one module. Names
load on first use (PEP 562), so ``from refbert_tf.pipelines import glue_summary`` does not import TensorFlow.
"""

import importlib

_HOMES = {
    "refbert_tf.pipelines.task_distillation": ("distill_glue", "TrainingSet"),
    "refbert_tf.pipelines.general_distillation": ("general_distill",),
    "refbert_tf.pipelines.export_job": ("export_glue_student",),
    "refbert_tf.pipelines.probes": ("pruning_probe", "reference_report", "reference_ceiling", "reference_diagnostics"),
    "refbert_tf.reports": (
        "SUMMARY_TASKS",
        "summary_markdown",
        "glue_summary",
        "ablation_summary",
        "ablation_plot",
        "reference_ceiling_markdown",
    ),
    "refbert_tf.config": (
        "DistillConfig",
        "GeneralDistillConfig",
        "DISTILL_DEFAULTS",
        "ABLATION_KNOBS",
        "distill_config",
    ),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name):
    if name in _HOME_OF:
        return getattr(importlib.import_module(_HOME_OF[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
