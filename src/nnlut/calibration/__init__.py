"""Calibration: observe each table's real inputs on unlabeled data and refit it, model frozen."""

from ._calibrate import CalibrationReport, calibrate
from ._observers import Reservoir
from ._refit import refit_table
from ._store import load_calibration, read_manifest, save_calibration

__all__ = ["CalibrationReport", "Reservoir", "calibrate", "load_calibration", "read_manifest", "refit_table",
           "save_calibration"]
