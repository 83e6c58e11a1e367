"""MoLRuntime: a model made of other models' layers, mixed by routers behind adapters.

    h = embeddings(embedding_model)(input_ids)
    for each fused layer:  h = sum_e w_e(h) * out_e(layer_e(in_e(h)))     (router w, adapters in/out)
    logits = head(final_norm(h))                                           (head_model)

Each expert layer is called with the arguments its own model would give it (see
``experts.py``), so with one expert per layer, identity adapters and the model's own layers
in order, the runtime reproduces that model's logits exactly (tested). Only adapters and
routers are parameters of the runtime; the experts stay frozen, outside its state dict,
and load on first use. Validation (layers locatable, indices in range, tokenizers, widths)
reads configs and tokenizer files only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from graftkit.compose.adapters import make_adapter
from graftkit.compose.config import MoLConfig, load_config
from graftkit.compose.experts import ExpertModel, LayerContext
from graftkit.compose.routers import RouterOutput, make_router
from graftkit.compose.tokenization import TokenBridge, build_bridge, same_vocabulary
from graftkit.errors import CompositionError


@dataclass
class MoLOutput:
    """``logits`` (None when the head model has no head), the final hidden state, router stats and losses."""

    last_hidden_state: torch.Tensor
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    router_stats: list[dict[str, Any]] | None = None
    hidden_states: list[torch.Tensor] = field(default_factory=list)


class FusedLayer(nn.Module):
    """One fused layer: a router over E experts, each behind an input and an output adapter."""

    def __init__(self, experts: list[tuple[str, int]], hidden_size: int, expert_sizes: list[int], config: MoLConfig) -> None:
        super().__init__()
        self.experts = list(experts)
        self.adapters_in = nn.ModuleList(make_adapter(config.adapter_type, hidden_size, d, **config.adapter) for d in expert_sizes)
        self.adapters_out = nn.ModuleList(make_adapter(config.adapter_type, d, hidden_size, **config.adapter) for d in expert_sizes)
        self.router = make_router(config.router_type, hidden_size, len(experts), **config.router)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None,
                run_expert: Callable[[int, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, RouterOutput]:
        route = self.router(h, mask)
        out = torch.zeros_like(h)
        for e in range(len(self.experts)):
            w = route.weights[..., e : e + 1]
            if not self.training and not bool((w > 0).any()):
                continue  # top-k routed no token here: skip the expert's compute
            out = out + w * self.adapters_out[e](run_expert(e, self.adapters_in[e](h)))
        return out, route


class MoLRuntime(nn.Module):
    """The fused model. ``MoLRuntime(config)`` with a YAML path, YAML text, dict or MoLConfig.

    ``models`` may hand over already built HF models by name (tests, notebooks); every other
    model loads lazily from its zoo name or folder. ``tokenizer`` overrides the embedding
    model's tokenizer.
    """

    def __init__(self, config: MoLConfig | str | Path | dict, models: dict[str, nn.Module] | None = None,
                 tokenizer: Any = None) -> None:
        super().__init__()
        self.config = config if isinstance(config, MoLConfig) else load_config(config)
        models = models or {}
        unknown = sorted(set(models) - set(self.config.models))
        if unknown:
            raise CompositionError(f"models {unknown} are not named in the MoL config", hint=f"config names {list(self.config.models)}")
        self.experts: dict[str, ExpertModel] = {
            name: ExpertModel(name, models.get(name, source)) for name, source in self.config.models.items()
        }
        if tokenizer is not None:
            self.experts[self.config.embedding_model].set_tokenizer(tokenizer)
        self._validate()
        emb = self.experts[self.config.embedding_model]
        self.hidden_size = emb.hidden_size
        self.layers = nn.ModuleList(
            FusedLayer(experts, self.hidden_size, [self.experts[m].hidden_size for m, _ in experts], self.config)
            for experts in self.config.layers
        )
        from graftkit.compose.fusion import make_unit

        self.links = nn.ModuleList(
            make_unit(link["kind"], self.hidden_size, self.experts[link["model"]].hidden_size, **link["options"])
            for link in self.config.links)
        self.gradient_checkpointing = False

    # ------------------------------------------------------------------ validation (no weights)
    def _validate(self) -> None:
        cfg = self.config
        emb, head = self.experts[cfg.embedding_model], self.experts[cfg.head_model]
        for name in {cfg.embedding_model, cfg.head_model}:
            self.experts[name].check_usable()
        if emb.hidden_size != head.hidden_size:
            raise CompositionError(
                f"head_model {cfg.head_model!r} is {head.hidden_size} wide but embedding_model {cfg.embedding_model!r} "
                f"is {emb.hidden_size}", hint="take embeddings and head from models of the same width (adapters sit around experts)")
        for i, experts in enumerate(cfg.layers):
            for name, index in experts:
                expert = self.experts[name]
                expert.check_usable()
                expert.check_layer(index)
        for link in cfg.links:
            self.experts[link["model"]].check_usable()
            self.experts[link["model"]].check_layer(int(link["layer"]))
        self.retokenized = set()
        base_tok = emb.tokenizer
        for name in {m for experts in cfg.layers for m, _ in experts} | {cfg.head_model}:
            tok = self.experts[name].tokenizer
            if same_vocabulary(base_tok, tok):
                continue
            if name == cfg.head_model:
                raise CompositionError(f"head_model {name!r} tokenizes differently from embedding_model {cfg.embedding_model!r}",
                                       hint="take the head from a model with the embedding model's tokenizer")
            if not cfg.retokenize:
                raise CompositionError(
                    f"expert {name!r} uses a different tokenizer from embedding_model {cfg.embedding_model!r} "
                    f"({len(tok.get_vocab())} vs {len(base_tok.get_vocab())} tokens)",
                    hint="set `retokenize: true` to bridge token positions through the text (see docs/compose.md), "
                         "or use experts that share the embedding model's tokenizer")
            self.retokenized.add(name)
        for link in cfg.links:  # cross-attention needs no aligned positions: other tokenizers read the text
            if not same_vocabulary(base_tok, self.experts[link["model"]].tokenizer):
                self.retokenized.add(link["model"])

    # ------------------------------------------------------------------ parts
    @property
    def tokenizer(self) -> Any:
        return self.experts[self.config.embedding_model].tokenizer

    @property
    def causal(self) -> bool:
        return self.experts[self.config.head_model].info.causal

    def experts_loaded(self) -> dict[str, bool]:
        return {name: e.loaded for name, e in self.experts.items()}

    def used_experts(self) -> list[str]:
        names = {self.config.embedding_model, self.config.head_model} | {m for layer in self.config.layers for m, _ in layer}
        names |= {link["model"] for link in self.config.links}
        return [n for n in self.config.models if n in names]

    def trainable_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Adapter and router parameters, separately (the trainer gives them their own learning rates)."""
        adapters = [p for layer in self.layers for m in (layer.adapters_in, layer.adapters_out) for p in m.parameters()]
        routers = [p for layer in self.layers for p in layer.router.parameters()]
        return {"adapters": adapters + list(self.links.parameters()), "routers": routers}

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each fused layer in the backward pass instead of keeping its activations."""
        self.gradient_checkpointing = True

    # ------------------------------------------------------------------ forward
    def _contexts(self, input_ids: torch.Tensor, mask: torch.Tensor | None
                  ) -> tuple[dict[str, LayerContext], dict[str, TokenBridge]]:
        needed: dict[str, int] = {self.config.embedding_model: 0}
        for experts in self.config.layers:
            for name, index in experts:
                needed[name] = max(needed.get(name, 0), index)
        contexts, bridges = {}, {}
        for name, up_to in needed.items():
            expert = self.experts[name]
            if name in self.retokenized:
                bridge = build_bridge(self.tokenizer, expert.tokenizer, input_ids.cpu(), None if mask is None else mask.cpu(), name)
                bridges[name] = TokenBridge(*(t.to(input_ids.device) for t in
                                              (bridge.expert_mask, bridge.into, bridge.back, bridge.covered)))
                contexts[name] = expert.context(None, bridges[name].expert_mask, up_to)
            else:
                contexts[name] = expert.context(input_ids, mask, up_to)
        return contexts, bridges

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                return_router_stats: bool = False, labels: torch.Tensor | None = None,
                output_hidden_states: bool = False, **unused: Any) -> MoLOutput:
        """Run the fused model. ``labels`` (causal LMs) gives the shifted token loss; ``aux_loss`` holds the
        router losses weighted by the config (added to ``loss`` when labels are given)."""
        contexts, bridges = self._contexts(input_ids, attention_mask)
        h = contexts[self.config.embedding_model].embeddings
        hidden_states, stats = [h], []
        aux = h.new_zeros(())
        linked: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        for i, layer in enumerate(self.layers):
            run = self._expert_runner(layer, contexts, bridges)
            if self.gradient_checkpointing and self.training:
                h, route = checkpoint(layer, h, attention_mask, run, use_reentrant=False)
            else:
                h, route = layer(h, attention_mask, run)
            for unit, link in zip(self.links, self.config.links):
                if int(link["after_layer"]) == i:
                    other, other_mask = self._linked_hidden(link["model"], int(link["layer"]), input_ids, attention_mask, linked)
                    h = unit(h, other, other_mask)
            aux = aux + self.config.entropy_weight * route.entropy_loss + self.config.balance_weight * route.balance_loss
            if return_router_stats:
                stats.append({"experts": [f"{m}:{i}" for m, i in layer.experts], **route.stats(attention_mask)})
            if output_hidden_states:
                hidden_states.append(h)
        head_model = self.experts[self.config.head_model]
        norm, head = head_model.final_norm(), head_model.head()
        if norm is not None:
            h = norm(h)
        logits = head(h) if head is not None else None
        loss = None
        if labels is not None and logits is not None:
            shift = logits[:, :-1].reshape(-1, logits.shape[-1])
            target = labels[:, 1:].reshape(-1)
            loss = nn.functional.cross_entropy(shift.float(), target, ignore_index=-100) + aux
        return MoLOutput(last_hidden_state=h, logits=logits, loss=loss, aux_loss=aux,
                         router_stats=stats if return_router_stats else None,
                         hidden_states=hidden_states if output_hidden_states else [])

    @torch.no_grad()
    def _linked_hidden(self, name: str, layer: int, input_ids: torch.Tensor, mask: torch.Tensor | None,
                       cache: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor | None]]
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Model ``name``'s own hidden state after its layer ``layer``, on its own tokens (re-encoded text if it tokenizes differently)."""
        if (name, layer) not in cache:
            expert = self.experts[name]
            ids, other_mask = input_ids, mask
            if name in self.retokenized:
                rows = input_ids if mask is None else [row[m.bool()] for row, m in zip(input_ids, mask)]
                texts = [self.tokenizer.decode(row, skip_special_tokens=True) for row in rows]
                tok = expert.tokenizer
                if tok.pad_token is None:
                    tok.pad_token = tok.eos_token
                enc = tok(texts, padding=True, return_tensors="pt")
                ids, other_mask = enc["input_ids"].to(input_ids.device), enc["attention_mask"].to(input_ids.device)
            ctx = expert.context(ids, other_mask, layer)
            h = ctx.embeddings
            for k in range(layer + 1):
                h = expert.call_layer(k, h, ctx)
            cache[(name, layer)] = (h, other_mask)
        return cache[(name, layer)]

    def _expert_runner(self, layer: FusedLayer, contexts: dict[str, LayerContext],
                       bridges: dict[str, TokenBridge]) -> Callable[[int, torch.Tensor], torch.Tensor]:
        def run(e: int, x: torch.Tensor) -> torch.Tensor:
            name, index = layer.experts[e]
            expert = self.experts[name]
            if name in bridges:
                bridge = bridges[name]
                return bridge.from_expert(expert.call_layer(index, bridge.to_expert(x), contexts[name]), x)
            return expert.call_layer(index, x, contexts[name])
        return run

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *, max_new_tokens: int = 20,
                 do_sample: bool = False, temperature: float = 1.0, eos_token_id: int | None = None,
                 seed: int = 0) -> torch.Tensor:
        """Greedy (or sampled) continuation for causal heads; the full sequence is re-run each step (no KV cache)."""
        if not self.causal:
            raise CompositionError(f"generate needs a causal LM head; head_model {self.config.head_model!r} is "
                                   f"{self.experts[self.config.head_model].info.family}", hint="use forward() for encoders")
        generator = torch.Generator().manual_seed(seed)
        ids = input_ids
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask
        if eos_token_id is None and self.tokenizer is not None:
            eos_token_id = self.tokenizer.eos_token_id
        finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        for _ in range(max_new_tokens):
            logits = self(ids, mask).logits[:, -1].float()
            if do_sample:
                probs = (logits / temperature).softmax(-1)
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(ids.device)
            else:
                nxt = logits.argmax(-1)
            if eos_token_id is not None:
                nxt = torch.where(finished, torch.full_like(nxt, eos_token_id), nxt)
                finished |= nxt == eos_token_id
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(nxt[:, None])], 1)
            if bool(finished.all()):
                break
        return ids

    # ------------------------------------------------------------------ least-squares adapter init
    @torch.no_grad()
    def calibrate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  only_mismatched: bool = True) -> dict[str, float]:
        """Fit adapters from paired activations instead of the (truncated) identity.

        For fused layer i and expert (m, k): the input adapter maps the runtime's hidden state
        entering layer i to m's own hidden state entering its layer k; the output adapter maps
        m's own output of layer k to the head model's own hidden state at the same relative
        depth. Needs experts that share the runtime's tokenizer. Returns each adapter's
        relative least-squares residual, so a poor fit is visible.
        """
        captured: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
        head_name = self.config.head_model
        wanted = {(m, k) for layer in self.config.layers for m, k in layer}
        head_layers = self.experts[head_name].info.num_layers
        n_fused = len(self.layers)
        wanted |= {(head_name, round((i + 1) * head_layers / n_fused) - 1) for i in range(n_fused)}
        for name in {m for m, _ in wanted}:
            if name in self.retokenized:
                raise CompositionError(f"calibrate: expert {name!r} tokenizes differently, so activations cannot be paired",
                                       hint="calibrate on experts sharing the embedding model's tokenizer, or train the adapters")
            expert = self.experts[name]
            layers = expert.layers
            hooks = []
            for m, k in wanted:
                if m == name:
                    def hook(module: nn.Module, args: Any, kwargs: Any, out: Any, key: tuple[str, int] = (m, k)) -> None:
                        hidden = args[0] if args else kwargs["hidden_states"]
                        captured[key] = (hidden.detach(), (out[0] if isinstance(out, tuple) else out).detach())
                    hooks.append(layers[k].register_forward_hook(hook, with_kwargs=True))
            try:
                base = expert.model if not expert.info.base_path else expert.model.get_submodule(expert.info.base_path)
                base(input_ids=input_ids, attention_mask=attention_mask)
            finally:
                for handle in hooks:
                    handle.remove()
        keep = (attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool))
        residuals: dict[str, float] = {}
        contexts, bridges = self._contexts(input_ids, attention_mask)
        h = contexts[self.config.embedding_model].embeddings
        for i, layer in enumerate(self.layers):
            target_out = captured[(head_name, round((i + 1) * head_layers / n_fused) - 1)][1][keep]
            for e, (m, k) in enumerate(layer.experts):
                a_in, a_out = layer.adapters_in[e], layer.adapters_out[e]
                if only_mismatched and a_in.in_dim == a_in.out_dim:
                    continue
                expert_in, expert_out = captured[(m, k)]
                residuals[f"layer{i}.{m}:{k}.in"] = a_in.fit(h[keep], expert_in[keep])
                residuals[f"layer{i}.{m}:{k}.out"] = a_out.fit(expert_out[keep], target_out)
            h, _ = layer(h, attention_mask, self._expert_runner(layer, contexts, bridges))
        return residuals

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path, extra: dict[str, nn.Module] | None = None) -> Path:
        """Adapters and routers (plus ``extra`` modules) as safetensors, with the config; experts are not copied."""
        from graftkit.compose.checkpoint import save_checkpoint

        return save_checkpoint(self, path, extra)

    def load_checkpoint(self, path: str | Path, extra: dict[str, nn.Module] | None = None) -> None:
        """Load a checkpoint of this configuration; CompositionError (before reading tensors) for another one."""
        from graftkit.compose.checkpoint import load_checkpoint

        load_checkpoint(self, path, extra)

    @classmethod
    def from_checkpoint(cls, path: str | Path, models: dict[str, nn.Module] | None = None,
                        tokenizer: Any = None) -> MoLRuntime:
        """The runtime a checkpoint was trained with, its adapters and routers loaded."""
        from graftkit.compose.checkpoint import read_config

        raw = read_config(path)
        raw.pop("fingerprint", None)
        runtime = cls(raw, models=models, tokenizer=tokenizer)
        runtime.load_checkpoint(path)
        return runtime

    def describe(self) -> str:
        lines = [f"MoL runtime: embeddings from {self.config.embedding_model}, head from {self.config.head_model}, "
                 f"{len(self.layers)} fused layers, {self.config.adapter_type} adapters, {self.config.router_type} router"]
        for i, layer in enumerate(self.layers):
            lines.append(f"  layer {i}: " + ", ".join(f"{m}[{k}]" for m, k in layer.experts))
        n = sum(p.numel() for group in self.trainable_parameters().values() for p in group)
        lines.append(f"  trainable parameters (adapters + routers): {n:,}")
        return "\n".join(lines)
