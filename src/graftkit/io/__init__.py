"""Checkpoints in and out: ``Checkpoint`` reads any HF folder or weight file lazily,
``CheckpointWriter`` writes sharded safetensors folders atomically."""

from graftkit.io.architecture import ArchitectureInfo
from graftkit.io.atomic import atomic_directory
from graftkit.io.checkpoint import Checkpoint
from graftkit.io.info import TensorInfo
from graftkit.io.sizes import parse_size
from graftkit.io.writer import CheckpointWriter

__all__ = ["ArchitectureInfo", "Checkpoint", "CheckpointWriter", "TensorInfo", "atomic_directory", "parse_size"]
