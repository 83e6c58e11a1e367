"""Capability transfer: fingerprints, size interpolation, latent fusion, adapter generators,
LoRA extraction and PEFT export (see docs/transfer.md)."""

from graftkit.transfer.extractor import CapabilityExtractor, ExtractorSettings, similarity, train_extractor
from graftkit.transfer.fusion import TaskGate, fuse, weighted_average
from graftkit.transfer.interpolator import SizeInterpolator
from graftkit.transfer.lora_extract import ExtractReport, extract_lora
from graftkit.transfer.peft_export import Adapter, LoRAFactors, apply_adapter, check_adapter, read_peft_adapter, write_peft_adapter
from graftkit.transfer.plot import plot_similarity

__all__ = [
    "Adapter",
    "CapabilityExtractor",
    "ExtractReport",
    "ExtractorSettings",
    "LoRAFactors",
    "SizeInterpolator",
    "TaskGate",
    "apply_adapter",
    "check_adapter",
    "extract_lora",
    "fuse",
    "plot_similarity",
    "read_peft_adapter",
    "similarity",
    "train_extractor",
    "weighted_average",
    "write_peft_adapter",
]
