"""The two calls most users need: ``merge(config, out)`` and ``validate(config)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graftkit.merge.config import MergeConfig, load_config


def _load(config: str | Path | dict | MergeConfig) -> tuple[MergeConfig, Path | None, str | None]:
    """The parsed config, the folder its relative paths may refer to, and its original text."""
    if isinstance(config, MergeConfig):
        return config, None, None
    if isinstance(config, dict):
        return load_config(config), None, None
    text = str(config)
    path = Path(text) if isinstance(config, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))) else None
    if path is not None:
        return load_config(path), path.parent, path.read_text(encoding="utf-8") if path.is_file() else None
    return load_config(text), None, text


def validate(config: str | Path | dict | MergeConfig, *, allow_missing: bool = False, dtype: str | None = None,
             verify: bool = True):
    """Check a config against its inputs' headers (no tensor read); the plan, or ValidationError with every problem."""
    cfg, folder, _ = _load(config)
    return _plan(cfg, folder, str(config) if folder is not None else None, allow_missing, dtype, verify)


def _plan(cfg: MergeConfig, folder: Path | None, source: str | None, allow_missing: bool, dtype: str | None,
          verify: bool = True):
    from graftkit.errors import ValidationError
    from graftkit.merge.plan import build_plan

    try:
        return build_plan(cfg, config_dir=folder, allow_missing=allow_missing, out_dtype=dtype, verify=verify)
    except ValidationError as exc:
        raise ValidationError(exc.problems, source=source) from None


def merge(
    config: str | Path | dict | MergeConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    seed: int = 0,
    shard_size: str | int = "5GB",
    dtype: str | None = None,
    nan: str = "warn",
    check: bool = True,
    allow_missing: bool = False,
    probes: int = 4,
    verify: bool = True,
    tune_malloc: bool = True,
) -> Any:
    """Merge the models of ``config`` (a YAML path, YAML text, dict or MergeConfig) into the folder ``out``.

    Validates first, streams tensor by tensor, writes the folder atomically with a model
    card and the config, then compares the output with its inputs on probe inputs
    (``check=False`` skips that). Returns a ``MergeResult``. ``tune_malloc=False`` leaves
    glibc's malloc settings alone: the speed-up they give is process-wide and stays
    (``graftkit.merge.allocator``), which a host application may not want.
    """
    from graftkit.merge.execute import MergeOptions, execute

    options = MergeOptions(shard_size=shard_size, overwrite=overwrite, seed=seed, nan=nan, check=check, probes=probes,
                           tune_malloc=tune_malloc)
    cfg, folder, text = _load(config)
    plan = _plan(cfg, folder, str(config) if folder is not None else None, allow_missing, dtype, verify)
    result = execute(plan, out, options, config_text=text)
    if check:
        from graftkit.merge.check import check_merge

        result.check = check_merge(plan, result, probes=probes)
    return result
