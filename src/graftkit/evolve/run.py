"""The search loop behind `graft evolve`: config -> validated space -> generations -> outputs.

Order of work: the evolve config, the space (every model and layer, from headers) and the
objective are validated first, so bad input fails before Ray starts. Then each
generation's candidates are evaluated on the worker pool; after every evaluation the
state is saved atomically, the progress table and fitness plot are rewritten, and on an
improvement the best recipe is written as a `graft merge` YAML. At the end the best
recipe is merged to ``OUT/merged`` with `graftkit.merge.merge`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from graftkit.errors import ConfigError
from graftkit.evolve.objective import ObjectiveSpec, check_heads
from graftkit.evolve.space import SearchSpace, validate_space
from graftkit.evolve.state import Evaluation, SearchState, has_state, load_state, save_state

_SPACE_KEYS = {"models", "method", "space", "base_model", "layer_groups", "ranges", "slots", "layer_spread",
               "statistics", "dtype", "global_params", "start", "filters"}
_MODEL_KEYS = {"model", "statistics"}
_TOP_KEYS = _SPACE_KEYS | {"objective", "search"}
_SEARCH_KEYS = {"optimizer", "budget", "popsize", "sigma", "seed", "workers", "retries"}


@dataclass
class EvolveConfig:
    space: SearchSpace
    objective: ObjectiveSpec
    optimizer: str = "cma"
    budget: int = 16
    popsize: int = 4
    sigma: float = 0.25
    seed: int = 0
    workers: int = 1
    retries: int = 3
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identifies the search (not the budget or worker count, which may change on --resume)."""
        key = {k: v for k, v in self.raw.items() if k != "search"}
        key["search"] = {k: v for k, v in (self.raw.get("search") or {}).items() if k in ("optimizer", "popsize", "sigma", "seed")}
        key["optimizer"] = self.optimizer
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _absolute(ref: Any, config_dir: Path | None) -> str:
    """An existing path made absolute (relative to the working directory, then the config's folder) or a
    cached zoo name made a path, so recipes written elsewhere still find it; the rest is left to validation."""
    path = Path(str(ref))
    for cand in ([path] if path.is_absolute() else [path] + ([config_dir / path] if config_dir else [])):
        if cand.exists():
            return str(cand.resolve())
    from graftkit.errors import GraftError
    from graftkit.zoo import is_cached, model_dir

    try:  # a `graft zoo` name already on this machine
        if is_cached(str(ref)):
            return str(model_dir(str(ref)))
    except GraftError:
        pass
    return str(ref)


def load_evolve_config(source: str | Path | dict) -> EvolveConfig:
    """Parse an evolve YAML (path, text or dict); ConfigError names unknown keys."""
    config_dir = None
    if isinstance(source, dict):
        raw = source
    else:
        path = Path(str(source))
        if "\n" not in str(source) and path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise ConfigError(f"evolve config {path} does not exist")
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            config_dir = path.resolve().parent
        else:
            raw = yaml.safe_load(str(source))
    if not isinstance(raw, dict):
        raise ConfigError("an evolve config is a mapping with models, method, objective and search")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown evolve config key(s): {', '.join(sorted(unknown))}",
                          hint=f"known keys: {', '.join(sorted(_TOP_KEYS))}")
    search = raw.get("search") or {}
    bad = set(search) - _SEARCH_KEYS
    if bad:
        raise ConfigError(f"unknown search key(s): {', '.join(sorted(bad))}", hint=f"known: {', '.join(sorted(_SEARCH_KEYS))}")
    entries = [_model_entry(m) for m in raw.get("models") or []]
    models = [_absolute(m, config_dir) for m, _ in entries]
    own_statistics = [st for _, st in entries] if any(st is not None for _, st in entries) else []
    space = SearchSpace(
        models=[str(m) for m in models], method=raw.get("method", "linear"), kind=raw.get("space", "parameters"),
        base_model=_absolute(raw["base_model"], config_dir) if raw.get("base_model") else None,
        layer_groups=int(raw.get("layer_groups", 1)), ranges=raw.get("ranges") or {}, slots=raw.get("slots"),
        layer_spread=int(raw.get("layer_spread", 1)), statistics=raw.get("statistics"),
        dtype=raw.get("dtype", "float32"), config_dir=config_dir, model_statistics=own_statistics,
        global_params=list(raw.get("global_params") or []), start=dict(raw.get("start") or {}),
        filters=_filters(raw.get("filters")),
    )
    objective = raw.get("objective")
    if not isinstance(objective, dict):
        raise ConfigError("the evolve config has no 'objective'",
                          hint="add 'objective: {kind: accuracy, tasks: [{dataset: sst2, split: validation}]}'")
    tasks = [dict(t, head=_absolute(t["head"], config_dir)) if isinstance(t, dict) and t.get("head") else t
             for t in objective.get("tasks") or []]
    objective = {**objective, "tasks": tasks} if "tasks" in objective else objective
    return EvolveConfig(space=space, objective=ObjectiveSpec(**objective), raw=raw, **search)


def _filters(raw: Any) -> dict[str, list[str]]:
    """``filters: {substring: [param, ...]}`` (a single parameter name may stand for its list)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"filters must map tensor-name substrings to parameter lists, got {raw!r}",
                          hint="e.g. 'filters: {pooler: [alpha]}'")
    return {str(k): [v] if isinstance(v, str) else list(v or []) for k, v in raw.items()}


def _model_entry(entry: Any) -> tuple[Any, dict | None]:
    """A ``models`` entry: a path or name, or ``{model: path, statistics: {...}}`` (that model's own data)."""
    if not isinstance(entry, dict):
        return entry, None
    unknown = set(entry) - _MODEL_KEYS
    if "model" not in entry or unknown:
        raise ConfigError(f"models entry {entry!r} is not 'path' or '{{model: path, statistics: {{...}}}}'",
                          hint=f"known keys of a models entry: {', '.join(sorted(_MODEL_KEYS))}")
    statistics = entry.get("statistics")
    if statistics is not None and not isinstance(statistics, dict):
        raise ConfigError(f"statistics of model {entry['model']} must be a mapping such as "
                          "{dataset: sst2, examples: 256}")
    return entry["model"], statistics


def _reference(space: SearchSpace) -> str:
    """The model whose architecture the resident model takes: the base, else the first model (as the engine)."""
    return space.base_model or space.models[0]


@dataclass
class EvolveResult:
    out: Path
    best: Evaluation
    best_config: dict[str, Any]
    history: list[Evaluation]
    merged: Path | None


def evolve(config: str | Path | dict | EvolveConfig, out: str | Path, *, resume: bool = False,
           address: str | None = None, workers: int | None = None, budget: int | None = None,
           optimizer: str | None = None, final_merge: bool = True, stop_after: int | None = None,
           actor_options: dict | None = None) -> EvolveResult:
    """Search merge recipes of ``config``; write the state, best recipe, table, plot and merged model to ``out``.

    ``stop_after`` ends the run after that many new evaluations (as if killed), leaving a
    state that ``resume=True`` continues from.
    """
    from graftkit.evolve.search import make_optimizer
    from graftkit.evolve.workers import init_ray, make_pool

    cfg = config if isinstance(config, EvolveConfig) else load_evolve_config(config)
    if optimizer is not None:
        cfg.optimizer = optimizer
    if budget is not None:
        cfg.budget = budget
    if workers is not None:
        cfg.workers = workers
    if cfg.budget < 1 or cfg.popsize < 1 or cfg.workers < 0:
        raise ConfigError(f"budget ({cfg.budget}) and popsize ({cfg.popsize}) must be >= 1, workers >= 0")
    space = validate_space(cfg.space)  # GraftError here: nothing has started yet
    check_heads(cfg.objective)
    out = Path(out)

    def fresh_optimizer():
        return make_optimizer(cfg.optimizer, space.dim, popsize=cfg.popsize, seed=cfg.seed, sigma=cfg.sigma,
                              x0=space.start_point())

    if resume:
        state = load_state(out, cfg.fingerprint, fresh_optimizer)
    else:
        if has_state(out):
            raise ConfigError(f"{out} already holds a search", hint="pass --resume to continue it, or choose a new folder")
        state = SearchState(fingerprint=cfg.fingerprint, optimizer=fresh_optimizer())
    out.mkdir(parents=True, exist_ok=True)

    reference = _reference(space)
    if cfg.workers > 0:
        init_ray(address, num_cpus=None if address else max(2, cfg.workers))
    pool = make_pool((space, cfg.objective, reference, cfg.seed), cfg.workers,
                     **({"retries": cfg.retries, "actor_options": actor_options} if cfg.workers > 0 else {}))
    new = 0
    try:
        while len(state.history) < cfg.budget:
            if not state.pending:
                state.pending = [list(map(float, x)) for x in state.optimizer.ask()]
                state.pending_start = len(state.history)
                state.generation += 1
                save_state(state, out)
            done = state.done_indices()
            todo = [(state.pending_start + i, g) for i, g in enumerate(state.pending)
                    if state.pending_start + i not in done]
            todo = todo[: max(0, cfg.budget - len(state.history))]
            if stop_after is not None:
                todo = todo[: max(0, stop_after - new)]
            for index, fitness, seconds, attempts in pool.run(todo):
                best_before = state.best
                state.history.append(Evaluation(index, state.generation, state.pending[index - state.pending_start],
                                                fitness, seconds, attempts))
                save_state(state, out)
                new += 1
                _write_progress(state, out)
                if best_before is None or fitness > best_before.fitness:
                    _write_best(space, state.history[-1], out)
            if stop_after is not None and new >= stop_after:
                break
            if {state.pending_start + i for i in range(len(state.pending))} <= state.done_indices():
                fits = [next(e.fitness for e in state.history if e.index == state.pending_start + i)
                        for i in range(len(state.pending))]
                state.optimizer.tell([np.asarray(g) for g in state.pending], fits)
                state.pending = []
                save_state(state, out)
            else:
                break  # budget reached inside a generation
    finally:
        pool.close()
    best = state.best
    best_config = space.config(np.asarray(best.genes))
    merged = None
    if final_merge and len(state.history) >= cfg.budget:
        from graftkit.merge import merge

        merged = out / "merged"
        merge(best_config, merged, overwrite=True, seed=cfg.seed, check=False, verify=False)
    return EvolveResult(out=out, best=best, best_config=best_config, history=list(state.history), merged=merged)


def _write_best(space: SearchSpace, best: Evaluation, out: Path) -> None:
    """The best recipe as a `graft merge` YAML (absolute model paths), replaced atomically."""
    cfg = space.config(np.asarray(best.genes))
    header = f"# graft evolve: best recipe so far (evaluation {best.index}, fitness {best.fitness:.6f})\n"
    tmp = out / ".best_recipe.yaml.tmp"
    tmp.write_text(header + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    tmp.replace(out / "best_recipe.yaml")


def _write_progress(state: SearchState, out: Path) -> None:
    """progress.md (one row per evaluation) and fitness.png (fitness and best-so-far over evaluations)."""
    rows = sorted(state.history, key=lambda e: e.index)
    lines = ["| eval | generation | fitness | best so far | seconds | attempts |", "|---:|---:|---:|---:|---:|---:|"]
    best = -float("inf")
    bests = []
    for e in rows:
        best = max(best, e.fitness)
        bests.append(best)
        lines.append(f"| {e.index} | {e.generation} | {e.fitness:.4f} | {best:.4f} | {e.seconds:.2f} | {e.attempts} |")
    (out / "progress.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([e.index for e in rows], [e.fitness for e in rows], "o", ms=3, label="candidate")
    ax.plot([e.index for e in rows], bests, "-", label="best so far")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("fitness")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "fitness.png", dpi=80)
    plt.close(fig)
