"""Offline task evaluation: sentiment data, shipped models, fine-tuned classifiers, metrics."""

from ._evaluate import EXTRA_SETS, Task, build_task, default_configs, evaluate_configs

__all__ = ["EXTRA_SETS", "Task", "build_task", "default_configs", "evaluate_configs"]
