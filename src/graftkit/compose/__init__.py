"""Run-time composition: adapters, routers, fusion units, the MoL runtime, its trainer and export.

    from graftkit.compose import MoLRuntime, MoLTrainer, TrainingConfig, describe
    runtime = MoLRuntime("fuse.yaml")                     # validated from configs, experts load lazily
    out = runtime(input_ids, attention_mask, return_router_stats=True)
"""

from graftkit.compose.arch import ArchInfo, describe, describe_config
from graftkit.compose.config import MoLConfig, load_config
from graftkit.compose.fusion import Link, LinkedModel, make_unit
from graftkit.compose.runtime import FusedLayer, MoLOutput, MoLRuntime
from graftkit.compose.trainer import MoLTrainer, TrainingConfig

__all__ = ["ArchInfo", "FusedLayer", "Link", "LinkedModel", "MoLConfig", "MoLOutput", "MoLRuntime", "MoLTrainer",
           "TrainingConfig", "describe", "describe_config", "load_config", "make_unit"]
