"""Raw ATen tracing with fake tensors: the model's forward pass recorded as an FX graph
of ATen ops (core decompositions), without reading or allocating any weight.

Module paths are recorded with forward hooks (for reporting only: nothing canonical
depends on a name), and a failure names the module that was running and the op.
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree

from graftkit.errors import TraceError

ModuleStack = tuple[tuple[str, str], ...]  # ((path, class name), ...) outermost first


@dataclass
class RawTrace:
    """One FX graph of a forward pass, with the role of each placeholder."""

    graph: torch.fx.Graph
    roles: dict[torch.fx.Node, tuple[str, Any]]  # ("param", name) | ("buffer", name) | ("input", position)
    modules: dict[torch.fx.Node, ModuleStack] = field(default_factory=dict)
    outputs: list[torch.fx.Node] = field(default_factory=list)


class _ModuleRecorder:
    """Forward hooks that note which module is running when each graph node is created."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.stack: list[tuple[str, str]] = []
        self.failed: ModuleStack | None = None
        self.failed_op: str | None = None
        self.events: list[tuple[int, ModuleStack]] = []
        self.handles = []
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(path, type(module).__name__)))
            self.handles.append(module.register_forward_hook(self._leave(), always_call=True))

    def _count(self) -> int:
        from torch.fx.experimental.proxy_tensor import get_proxy_mode

        mode = get_proxy_mode()
        return len(mode.tracer.graph.nodes) if mode is not None else 0

    def _last_op(self) -> str | None:
        from torch.fx.experimental.proxy_tensor import get_proxy_mode

        mode = get_proxy_mode()
        if mode is None:
            return None
        for node in reversed(mode.tracer.graph.nodes):
            if node.op == "call_function" and "_local_scalar_dense" not in str(node.target):
                return str(node.target)
        return None

    def _enter(self, path: str, cls: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self.stack.append((path, cls))
            self.events.append((self._count(), tuple(self.stack)))

        return hook

    def _leave(self) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            if self.failed is None and sys.exc_info()[0] is not None:
                self.failed = tuple(self.stack)  # an exception is unwinding: remember where it started
                self.failed_op = self._last_op()
            if self.stack:
                self.stack.pop()
            self.events.append((self._count(), tuple(self.stack)))

        return hook

    def where(self) -> tuple[str, str | None]:
        """(path, class) of the innermost module running when the trace failed."""
        stack = self.failed if self.failed else tuple(self.stack)
        if not stack:
            return "<root>", None
        return stack[-1][0] or "<root>", stack[-1][1]

    def assign(self, graph: torch.fx.Graph) -> dict[torch.fx.Node, ModuleStack]:
        """Module stack of each node: the one active when the node was appended."""
        out: dict[torch.fx.Node, ModuleStack] = {}
        events = iter(self.events + [(1 << 62, ())])
        count, stack = 0, ()
        next_count, next_stack = next(events)
        for i, node in enumerate(graph.nodes):
            while next_count <= i:
                stack = next_stack
                next_count, next_stack = next(events)
            out[node] = stack
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@functools.lru_cache(maxsize=1)
def _decompositions() -> dict:
    """The core ATen decomposition table (building it costs about a second: once)."""
    from torch._decomp import core_aten_decompositions

    return dict(core_aten_decompositions())


_OP_IN_MESSAGE = re.compile(r"(aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?)")


def raw_trace(model: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> RawTrace:
    """Trace ``model(*args, **kwargs)`` to ATen ops with fake tensors, in eval mode."""
    from torch.func import functional_call
    from torch.fx.experimental.proxy_tensor import make_fx

    # Every tensor goes to the meta device: no weight is read, and ops dispatch the same
    # way whatever device the model lives on (CPU kernels decompose differently).
    params = {n: p.detach().to("meta") for n, p in model.named_parameters()}
    buffers = {n: b.detach().to("meta") for n, b in model.named_buffers()}
    flat_inputs, spec = pytree.tree_flatten((args, kwargs))
    tensor_slots = [i for i, v in enumerate(flat_inputs) if isinstance(v, torch.Tensor)]
    tensors = [flat_inputs[i] for i in tensor_slots]

    def forward(p: dict, b: dict, inputs: list) -> list:
        flat = list(flat_inputs)
        for slot, value in zip(tensor_slots, inputs):
            flat[slot] = value
        call_args, call_kwargs = pytree.tree_unflatten(flat, spec)
        out = functional_call(model, {**p, **b}, tuple(call_args), call_kwargs, strict=False)
        if hasattr(out, "to_tuple"):
            out = out.to_tuple()
        return [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]

    was_training = {m: m.training for m in model.modules()}
    model.eval()
    recorder = _ModuleRecorder(model)
    try:
        gm = make_fx(forward, decomposition_table=_decompositions(), tracing_mode="fake")(
            params, buffers, tensors
        )
    except TraceError:
        raise
    except Exception as exc:  # any failure inside the traced forward pass
        raise _trace_error(model, recorder, exc) from exc
    finally:
        recorder.close()
        for m, flag in was_training.items():
            m.train(flag)

    graph = gm.graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    roles: dict[torch.fx.Node, tuple[str, Any]] = {}
    names = [("param", n) for n in params] + [("buffer", n) for n in buffers]
    names += [("input", i) for i in range(len(tensors))]
    for node, role in zip(placeholders, names):
        roles[node] = role
    output = next(n for n in graph.nodes if n.op == "output")
    outs = [a for a in pytree.tree_leaves(output.args) if isinstance(a, torch.fx.Node)]
    return RawTrace(graph=graph, roles=roles, modules=recorder.assign(graph), outputs=outs)


def _trace_error(model: torch.nn.Module, recorder: _ModuleRecorder, exc: Exception) -> TraceError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    found = _OP_IN_MESSAGE.search(str(exc))
    op = found.group(1) if found else None
    if op is None or "_local_scalar_dense" in op:
        op = f"the value of {recorder.failed_op}" if recorder.failed_op else (op or type(exc).__name__)
    path, cls = recorder.where()
    cls = cls or type(model).__name__
    data_dependent = ("_local_scalar_dense" in str(exc) or "data-dependent" in str(exc).lower()
                      or "DataDependent" in type(exc).__name__)
    if data_dependent:
        what = "data-dependent control flow (a Python branch or .item() on a tensor value)"
    else:
        what = f"an op the tracer cannot run ({message[:160]})"
    error = TraceError(
        f"cannot trace {type(model).__name__}: module {path!r} ({cls}) hits {what} at {op}",
        hint="graftkit.genome.structural_genome(model) gives a weaker structural signature "
        "(module types and parameter shapes only); `graft inspect --structural` uses it",
    )
    from graftkit.genome.structural import structural_genome

    error.module = path
    error.op = op
    error.fallback = structural_genome(model)
    return error
