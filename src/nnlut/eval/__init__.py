"""Offline task evaluation: sentiment data, shipped models, fine-tuned classifiers, metrics."""

from ._evaluate import EXTRA_SETS, EvalConfig, Task, build_task, default_configs, entry_sweep_configs, evaluate_configs

__all__ = ["EXTRA_SETS", "EvalConfig", "Task", "entry_sweep_configs", "build_task", "default_configs", "evaluate_configs"]
