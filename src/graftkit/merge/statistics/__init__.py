"""Statistics for data-aware merges, computed on a small calibration set and cached.

    from graftkit.merge.statistics import calibration_set, statistics_for
    calib = calibration_set("sst2", examples=256)
    stats = statistics_for("fisher", "experts/sst2", calib)      # cached safetensors
    model_params[i].update(stats.lookup("bert.encoder.layer.0.output.dense.weight"))

``fisher``: diagonal Fisher (mean squared per-example gradient of the model's own
loss) keyed by parameter name. ``gram``: X^T X / n of every nn.Linear input keyed
by module path; the weight ``<path>.weight`` uses the Gram stored under ``<path>``.
"""

from graftkit.merge.statistics.calibration import Calibration, calibration_set, from_texts
from graftkit.merge.statistics.compute import compute_statistics, statistics_for
from graftkit.merge.statistics.fisher import compute_fisher
from graftkit.merge.statistics.gram import compute_grams
from graftkit.merge.statistics.store import ModelStatistics, cache_key, cache_root

__all__ = [
    "Calibration",
    "ModelStatistics",
    "cache_key",
    "cache_root",
    "calibration_set",
    "compute_fisher",
    "compute_grams",
    "compute_statistics",
    "from_texts",
    "statistics_for",
]
