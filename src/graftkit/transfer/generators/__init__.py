"""Adapter generators: one interface, ``generate(sources, target, texts, weights=..., modules=...) -> Adapter``.

``subspace`` maps source LoRAs through stitching maps (no training); ``distill`` trains
the target's LoRA to reproduce the sources on unlabeled text. ``generate_and_check``
runs one and measures it on held-out texts before anything is reported or written.
"""

from __future__ import annotations

from pathlib import Path

from graftkit.errors import TransferError
from graftkit.transfer.generators.common import CheckReport, Encoder, check_adapter_effect
from graftkit.transfer.generators.distill import DistillGenerator
from graftkit.transfer.generators.subspace import SubspaceGenerator
from graftkit.transfer.peft_export import Adapter, write_peft_adapter

GENERATORS = {"distill": DistillGenerator, "subspace": SubspaceGenerator}


def get_generator(name: str, **settings: object):
    if name not in GENERATORS:
        raise TransferError(f"unknown generator {name!r}", hint=f"choose one of: {', '.join(GENERATORS)}")
    return GENERATORS[name](**settings)


def generate_and_check(generator, sources: list[Encoder], target: Encoder, texts: list[str], check_texts: list[str],
                       out: str | Path | None = None, overwrite: bool = False, **kwargs: object) -> tuple[Adapter, CheckReport]:
    """Generate an adapter, check it against the first source on ``check_texts`` (never seen in training), then write it."""
    adapter = generator.generate(sources, target, texts, **kwargs)
    adapter.base = adapter.base or target.name
    report = check_adapter_effect(target, adapter, sources[0].teach(check_texts), check_texts)
    adapter.meta["check"] = {**vars(report), "summary": report.summary()}
    if out is not None:
        write_peft_adapter(adapter, out, base_model_name_or_path=target.name, overwrite=overwrite, model=target.model)
    return adapter, report


__all__ = ["GENERATORS", "CheckReport", "DistillGenerator", "Encoder", "SubspaceGenerator", "check_adapter_effect",
           "generate_and_check", "get_generator"]
