"""Evolutionary merge-recipe search (parameter and data-flow spaces) on Ray, and distributed merging."""

from graftkit.evolve.distributed import distributed_merge
from graftkit.evolve.objective import Objective, ObjectiveSpec, TaskSpec
from graftkit.evolve.resident import ResidentMerger
from graftkit.evolve.run import EvolveConfig, EvolveResult, evolve, load_evolve_config
from graftkit.evolve.search import CMAES, RandomSearch, make_optimizer
from graftkit.evolve.space import SearchSpace, validate_space

__all__ = [
    "CMAES", "EvolveConfig", "EvolveResult", "Objective", "ObjectiveSpec", "RandomSearch", "ResidentMerger",
    "SearchSpace", "TaskSpec", "distributed_merge", "evolve", "load_evolve_config", "make_optimizer", "validate_space",
]
