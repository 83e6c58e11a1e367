"""Task data and the evaluators every engine shares.

``load_dataset(name)`` gives train / validation / test splits of the shared real
datasets (``$GRAFTKIT_DATA`` or ``../shared/datasets``) or of two synthetic tasks
that need no files; ``load_csv`` / ``load_jsonl`` read your own files. Evaluators
live in ``graftkit.data.evaluate``, fine-tuning in ``graftkit.data.finetune``.
"""

from graftkit.data.files import load_csv, load_jsonl
from graftkit.data.registry import DATASETS, DatasetEntry, list_datasets, load_dataset, resolve_name
from graftkit.data.root import ENV_VAR, data_root
from graftkit.data.types import KINDS, Dataset, Split

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "KINDS",
    "Dataset",
    "DatasetEntry",
    "Split",
    "data_root",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_jsonl",
    "resolve_name",
]
