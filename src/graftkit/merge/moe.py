"""Assemble a Mixtral-style mixture of experts from same-architecture llama/mistral models.

mergekit-moe's YAML is accepted: ``base_model`` gives attention, norms and embeddings;
each entry of ``experts`` gives one expert's MLP in every layer; the router ("gate")
of each layer starts from prompts' hidden states: ``hidden`` (the base model's hidden
state entering each layer at the prompt's last token, averaged over the positive
prompts, minus the negative ones, normalized), ``cheap_embed`` (the normalized sum of
the prompts' token embeddings, the same for every layer) or ``random``. The output is
written in the layout Mixtral checkpoints use on the hub (``block_sparse_moe.experts.
E.w1/w2/w3``), tensor by tensor, and loads with ``MixtralForCausalLM``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict

from graftkit.errors import ConfigError, MergeError, ValidationError
from graftkit.merge.config import ModelRef
from graftkit.merge.plan import DTYPES
from graftkit.merge.references import resolve_ref

_MLP = re.compile(r"^model\.layers\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.weight$")
_EXPERT_NAMES = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}
SUPPORTED = ("llama", "mistral")


class MoEExpert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_model: ModelRef
    positive_prompts: list[str] = []
    negative_prompts: list[str] | None = None


class MoEConfig(BaseModel):
    """mergekit-moe's config (Mixtral output)."""

    model_config = ConfigDict(extra="forbid")
    base_model: ModelRef
    experts: list[MoEExpert]
    gate_mode: Literal["hidden", "cheap_embed", "random"] = "hidden"
    dtype: str | None = None
    experts_per_token: int = 2
    architecture: Literal["mixtral"] | None = None
    tokenizer_source: Literal["base"] | None = None


@dataclass
class MoEResult:
    output: Path
    experts: int
    layers: int
    tensors: int
    check: str


def load_moe_config(path: str | Path) -> MoEConfig:
    from pydantic import ValidationError as PydanticError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"MoE config {path} not found")
    try:
        return MoEConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except PydanticError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ValidationError(problems, source=str(path)) from None


def _open_all(config: MoEConfig, config_dir: Path | None) -> tuple[Any, list[Any]]:
    from graftkit.io import Checkpoint

    problems = []
    opened = []
    for ref in [config.base_model] + [e.source_model for e in config.experts]:
        resolved = resolve_ref(ref, config_dir)
        if resolved.problem:
            problems.append(resolved.problem)
            continue
        if ref.lora is not None:
            problems.append(f"{ref}: LoRA experts are not supported in MoE assembly; merge the adapter first")
            continue
        opened.append(Checkpoint.open(resolved.path))
    if problems:
        raise ValidationError(problems)
    return opened[0], opened[1:]


def validate_moe(config: MoEConfig, base: Any, experts: list[Any]) -> list[str]:
    """Every problem with the config and the models, from headers only."""
    problems = []
    arch = base.architecture
    if arch.model_type not in SUPPORTED:
        problems.append(f"base model is {arch.model_type!r}; MoE assembly supports {', '.join(SUPPORTED)}")
    if not config.experts:
        problems.append("experts: at least one expert is needed")
    if not 1 <= config.experts_per_token <= max(1, len(config.experts)):
        problems.append(f"experts_per_token {config.experts_per_token} must be between 1 and {len(config.experts)}")
    if config.dtype is not None and config.dtype not in DTYPES:
        problems.append(f"dtype {config.dtype!r} unknown (use float32, float16 or bfloat16)")
    mlp = [n for n in base.names() if _MLP.match(n)]
    if not mlp:
        problems.append("base model has no model.layers.N.mlp.{gate,up,down}_proj weights")
    for spec, ck in zip(config.experts, experts):
        if ck.architecture.model_type not in SUPPORTED:
            problems.append(f"expert {spec.source_model} is {ck.architecture.model_type!r}, not llama/mistral")
            continue
        for name in mlp:
            if name not in ck:
                problems.append(f"expert {spec.source_model} lacks {name}")
            elif ck.shape(name) != base.shape(name):
                problems.append(f"expert {spec.source_model}: {name} has shape {list(ck.shape(name))}, "
                                f"the base {list(base.shape(name))}")
        if config.gate_mode != "random" and not spec.positive_prompts:
            problems.append(f"expert {spec.source_model}: gate_mode {config.gate_mode} needs positive_prompts")
    return problems


def _prompt_ids(tokenizer: Any, prompts: list[str]) -> dict[str, torch.Tensor]:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "left"
    return tokenizer([(tokenizer.bos_token or "") + p for p in prompts], return_tensors="pt", padding=True,
                     add_special_tokens=False)


def gate_vectors(config: MoEConfig, base: Any, seed: int = 0) -> torch.Tensor:
    """Router weights, shape (layers, experts, hidden)."""
    layers, hidden = base.architecture.num_layers, base.architecture.hidden_size
    if config.gate_mode == "random":
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((layers, len(config.experts), hidden), generator=gen)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base.folder))
    model = None
    embed = None
    if config.gate_mode == "hidden":
        model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32).eval()
    else:
        embed = base["model.embed_tokens.weight"].float()

    @torch.no_grad()
    def encode(prompts: list[str]) -> torch.Tensor:
        batch = _prompt_ids(tokenizer, prompts)
        if model is not None:
            out = model(**batch, output_hidden_states=True)
            states = torch.stack(out.hidden_states[:-1])  # the input of each layer: (layers, batch, seq, hidden)
            return states[:, :, -1, :].mean(dim=1)  # last token (left padding), mean over prompts
        h = embed[batch["input_ids"]] * batch["attention_mask"].unsqueeze(-1)
        return h.sum(dim=(0, 1)).expand(layers, hidden).clone()

    vectors = []
    for spec in config.experts:
        v = encode(spec.positive_prompts)
        if spec.negative_prompts:
            v = v - encode(spec.negative_prompts)
        vectors.append(v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8))
    return torch.stack(vectors, dim=1)


def _out_config(base: Any, config: MoEConfig, dtype: torch.dtype) -> dict[str, Any]:
    cfg = copy.deepcopy(base.config)
    cfg.update({
        "model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
        "num_local_experts": len(config.experts), "num_experts_per_tok": config.experts_per_token,
        "output_router_logits": False, "router_aux_loss_coef": 0.001,
        "dtype": str(dtype).removeprefix("torch."),
    })
    cfg.setdefault("sliding_window", None)
    cfg.pop("torch_dtype", None)
    return cfg


def assemble_moe(config_path: str | Path, out: str | Path, *, overwrite: bool = False, seed: int = 0,
                 shard_size: str = "5GB", check: bool = True) -> MoEResult:
    """Build the MoE of ``config_path`` into ``out`` (atomically), then load it and generate as a check."""
    from graftkit.io import CheckpointWriter, TensorInfo
    from graftkit.merge.reader import DirectReader
    from graftkit.progress import progress_bar

    config_path = Path(config_path)
    config = load_moe_config(config_path)
    base, experts = _open_all(config, config_path.parent)
    problems = validate_moe(config, base, experts)
    if problems:
        raise ValidationError(problems, source=str(config_path))
    dtype = DTYPES[config.dtype] if config.dtype else base.dtype(base.names()[0])
    gates = gate_vectors(config, base, seed)
    n_exp = len(config.experts)

    plan: list[tuple[str, tuple[int, ...], Any]] = []  # output name, shape, how to make it
    done_layers = set()
    for name in base.names():
        m = _MLP.match(name)
        if m is None:
            plan.append((name, base.shape(name), ("base", name)))
            continue
        layer, kind = int(m.group(1)), m.group(2)
        prefix = f"model.layers.{layer}.block_sparse_moe"
        if layer not in done_layers:
            done_layers.add(layer)
            plan.append((f"{prefix}.gate.weight", (n_exp, base.architecture.hidden_size), ("gate", layer)))
        for e in range(n_exp):
            plan.append((f"{prefix}.experts.{e}.{_EXPERT_NAMES[kind]}.weight", base.shape(name), ("expert", e, name)))
    readers = [DirectReader(base)] + [DirectReader(ck) for ck in experts]
    layout = [TensorInfo(n, tuple(s), dtype) for n, s, _ in plan]
    out = Path(out)
    try:
        with CheckpointWriter(out, max_shard_size=shard_size, overwrite=overwrite, layout=layout) as writer, \
                progress_bar("assembling MoE", len(plan)) as advance:
            for name, _, how in plan:
                if how[0] == "base":
                    tensor = readers[0].read(how[1])
                elif how[0] == "gate":
                    tensor = gates[how[1]]
                else:
                    tensor = readers[1 + how[1]].read(how[2])
                writer.write(name, tensor.to(dtype).contiguous())
                advance(1)
            writer.write_json("config.json", _out_config(base, config, dtype))
            writer.copy_auxiliary(base.folder)
            writer.write_text("graftkit_moe.yaml", config_path.read_text(encoding="utf-8"))
            writer.write_text("README.md", _card(config, out, len(plan)))
    finally:
        for r in readers:
            r.close()
    report = _check(out, config) if check else "not run (--no-check)"
    if check:
        card = out / "README.md"
        card.write_text(card.read_text(encoding="utf-8") + f"\n## Check\n\n{report}\n", encoding="utf-8")
    return MoEResult(out, n_exp, len(done_layers), len(plan), report)


def _card(config: MoEConfig, out: Path, tensors: int) -> str:
    lines = [f"# {out.name}", "", f"Mixture of experts assembled with graftkit (`graft moe`): {len(config.experts)} "
             f"experts, {config.experts_per_token} per token, gates from `{config.gate_mode}`.", "",
             f"- base (attention, norms, embeddings): `{config.base_model}`"]
    lines += [f"- expert {i}: `{e.source_model}`" for i, e in enumerate(config.experts)]
    lines += ["", f"{tensors} tensors.", ""]
    return "\n".join(lines)


@torch.no_grad()
def _check(out: Path, config: MoEConfig) -> str:
    """Load with MixtralForCausalLM, generate from a prompt, and require finite logits."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    model = transformers.MixtralForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    prompt = (config.experts[0].positive_prompts or ["Hello"])[0]
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(out))
        ids = tok(prompt, return_tensors="pt").input_ids
    except Exception:  # no tokenizer: a fixed id sequence
        ids = torch.arange(1, 9)[None]
    if ids.shape[1] == 0:
        ids = torch.arange(1, 9)[None]
    logits = model(ids).logits
    if not torch.isfinite(logits).all():
        raise MergeError(f"the MoE in {out} produces non-finite logits", hint="check the experts for NaN weights")
    generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    return (f"loads with MixtralForCausalLM; logits finite on a {ids.shape[1]}-token prompt; "
            f"generated {generated.shape[1] - ids.shape[1]} tokens: {generated[0, ids.shape[1]:].tolist()}")
