"""Capability transfer: fingerprints, size interpolation, latent fusion, adapter generators,
LoRA extraction and PEFT export (see docs/transfer.md)."""

from graftkit.transfer.lora_extract import ExtractReport, extract_lora
from graftkit.transfer.peft_export import Adapter, LoRAFactors, apply_adapter, check_adapter, read_peft_adapter, write_peft_adapter

__all__ = [
    "Adapter",
    "ExtractReport",
    "LoRAFactors",
    "apply_adapter",
    "check_adapter",
    "extract_lora",
    "read_peft_adapter",
    "write_peft_adapter",
]
