"""The catalogue of named datasets: ``load_dataset(name)`` and ``list_datasets()``.

Real datasets read files under the data folder (see ``graftkit.data.root``);
synthetic ones are generated in memory and need no files at all, which is what lets
``make demo`` run on a fresh machine.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graftkit.data import image_datasets, lm_datasets, synthetic, text_datasets
from graftkit.data.types import Dataset
from graftkit.errors import DataError


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset: what it is and how to load it."""

    name: str
    kind: str
    description: str
    loader: Callable[[Path | None], Dataset]
    aliases: tuple[str, ...] = ()
    needs_files: bool = True
    folder: str = ""  # under the data folder; defaults to the name

    def files_present(self, root: Path) -> bool:
        """Whether ``root`` holds this dataset's folder (always True for generated datasets)."""
        return not self.needs_files or (root / (self.folder or self.name)).is_dir()


_T, _P, _I, _L = "text-classification", "text-pair-classification", "image-classification", "language-modeling"
_ENTRIES = [
    DatasetEntry("sst2", _T, "binary movie-sentence sentiment", text_datasets.sst2, ("sst-2",)),
    DatasetEntry("sst5", _T, "5-way movie-sentence sentiment", text_datasets.sst5, ("sst-5",)),
    DatasetEntry("trec", _T, "question type, 6 coarse classes", text_datasets.trec),
    DatasetEntry("agnews", _T, "news topic, 4 classes", text_datasets.agnews, ("ag_news", "ag-news")),
    DatasetEntry("subj", _T, "subjective vs objective sentences", text_datasets.subj),
    DatasetEntry("mr", _T, "movie review polarity", text_datasets.mr),
    DatasetEntry("cr", _T, "product review polarity", text_datasets.cr),
    DatasetEntry("mpqa", _T, "opinion phrase polarity", text_datasets.mpqa),
    DatasetEntry("emotion", _T, "6 emotions of tweets", text_datasets.emotion),
    DatasetEntry("rte", _P, "textual entailment (2-way)", text_datasets.rte),
    DatasetEntry("cb", _P, "CommitmentBank entailment (3-way)", text_datasets.cb),
    DatasetEntry("sms_spam", _T, "SMS spam vs ham", text_datasets.sms_spam, ("sms-spam", "spam")),
    DatasetEntry("mnist", _I, "handwritten digits 28x28", image_datasets.mnist),
    DatasetEntry("fashion_mnist", _I, "clothing 28x28, 10 classes", image_datasets.fashion_mnist, ("fashion-mnist", "fmnist")),
    DatasetEntry("digits", _I, "scikit-learn digits 8x8", image_datasets.digits, ("sklearn_digits",), folder="sklearn_digits"),
    DatasetEntry("lfw_subset", _I, "faces vs non-faces 25x25", image_datasets.lfw_subset, ("skimage_lfw_subset",),
                 folder="skimage_lfw_subset"),
    DatasetEntry("tiny_shakespeare", _L, "Shakespeare, character-level text", lm_datasets.tiny_shakespeare, ("shakespeare",)),
    DatasetEntry("wikitext2", _L, "WikiText-2 raw (validation/test only)", lm_datasets.wikitext2, ("wikitext2_raw", "wikitext-2"),
                 folder="wikitext2_raw"),
    DatasetEntry("synthetic-sentiment", _T, "generated product-review sentiment (no files needed)",
                 synthetic.sentiment_dataset, ("synthetic_sentiment",), needs_files=False),
    DatasetEntry("synthetic-topic", _T, "generated news-sentence topic, 4 classes (no files needed)",
                 synthetic.topic_dataset, ("synthetic_topic",), needs_files=False),
]
DATASETS: dict[str, DatasetEntry] = {e.name: e for e in _ENTRIES}
_ALIASES: dict[str, str] = {a: e.name for e in _ENTRIES for a in e.aliases}


def list_datasets() -> list[DatasetEntry]:
    """Every named dataset, real and synthetic, in catalogue order."""
    return list(_ENTRIES)


def resolve_name(name: str) -> DatasetEntry:
    """The entry for ``name`` (or an alias); a DataError suggests close names otherwise."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in DATASETS:
        return DATASETS[key]
    known = list(DATASETS) + list(_ALIASES)
    close = list(dict.fromkeys(_ALIASES.get(c, c) for c in difflib.get_close_matches(key, known, n=5, cutoff=0.5)))[:3]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "see `graft data list`"
    raise DataError(f"unknown dataset {name!r}", hint=hint)


def load_dataset(name: str, root: str | Path | None = None) -> Dataset:
    """Load a named dataset with train / validation / test splits.

    ``root`` overrides the data folder (default ``$GRAFTKIT_DATA`` or
    ``../shared/datasets``). Example: ``load_dataset("sst2").train.texts[:3]``.
    """
    entry = resolve_name(name)
    return entry.loader(None if root is None else Path(root))
