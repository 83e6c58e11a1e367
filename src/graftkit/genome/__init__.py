"""Genome: a model's computation as a canonical ATen op graph, a signature that proves
two models compute the same thing, canonical parameter ids, reusable blocks (genes)
and transplantation of blocks between models.
"""

from graftkit.genome.decompose import trace
from graftkit.genome.graph import Genome, GNode

__all__ = ["GNode", "Genome", "trace"]

from graftkit.genome.diff import GenomeDiff, diff  # noqa: E402
from graftkit.genome.params import canonical_ids, param_map  # noqa: E402

__all__ += ["GenomeDiff", "canonical_ids", "diff", "param_map"]

from graftkit.genome.structural import StructuralSignature, structural_genome  # noqa: E402

__all__ += ["StructuralSignature", "structural_genome"]
