"""Generation that pauses at each tool call, runs it through MCP and continues.

The model generates until it closes a call (``</tool>``, see ``syntax``); the call is run
on whichever server offers that tool, ``<result>...</result>`` is appended, and generation
resumes from the new text. Failures (malformed call, unknown tool, bad arguments, a tool
error, a crashed or hung server) become ``<result>error: ...</result>`` so the model and
the caller both see them; nothing is ever evaluated locally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from graftkit.hybrid.tools.client import MCPServerProcess, ToolError
from graftkit.hybrid.tools.syntax import END, ToolCall, find_call, format_result


@dataclass
class ToolUse:
    name: str
    argument: str
    result: str
    error: bool


@dataclass
class ToolGeneration:
    text: str  # the generated continuation, tool calls and results included
    calls: list[ToolUse] = field(default_factory=list)

    @property
    def tool_responses(self) -> list[str]:
        return [c.result for c in self.calls]


class _StopAtCallEnd:
    """Stops each row as soon as its generated text ends a tool call or holds a ``stop`` string
    (so no tokens are spent past the end of an answer)."""

    def __init__(self, tokenizer: Any, prompt_length: int, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.marks = [END, *stop]
        self.window = 2 * max(len(m) for m in self.marks)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = [self.tokenizer.decode(row[start:]) for row in input_ids]
        return torch.tensor([any(m in t for m in self.marks) for t in tails], device=input_ids.device)


def _run_call(call: ToolCall, servers: Sequence[MCPServerProcess], timeout: float) -> tuple[str, bool]:
    if call.error:
        return call.error, True
    owner = next((s for s in servers if call.name in s.tools), None)
    if owner is None:
        offered = sorted({t for s in servers for t in s.tools})
        return f"unknown tool {call.name!r} (available: {', '.join(offered) or 'none'})", True
    try:
        arguments = call.arguments(owner.tools[call.name])
    except ValueError as exc:
        return f"bad arguments for {call.name!r}: {exc}", True
    try:
        return owner.call(call.name, arguments, timeout=timeout), False
    except ToolError as exc:
        return str(exc), True


def generate_with_tools(
    model: Any,
    prompt: str,
    tokenizer: Any,
    servers: Sequence[MCPServerProcess | Sequence[str] | str] = (),
    *,
    max_new_tokens: int = 64,
    max_calls: int = 4,
    tool_timeout: float = 10.0,
    stop: Sequence[str] = (),
) -> ToolGeneration:
    """Greedy generation from ``prompt`` with tool calls executed through MCP ``servers``.

    ``servers``: running ``MCPServerProcess`` objects, or commands to start for this call
    (closed at the end). ``max_new_tokens`` bounds all generated tokens together; ``stop``
    strings end generation (e.g. "\\nQ:" for few-shot prompts).
    """
    from transformers import StoppingCriteriaList

    started = [MCPServerProcess(s, timeout=tool_timeout).start() for s in servers if not isinstance(s, MCPServerProcess)]
    running = [s for s in servers if isinstance(s, MCPServerProcess)] + started
    text, calls, budget = "", [], max_new_tokens
    try:
        while budget > 0:
            ids = tokenizer(prompt + text, return_tensors="pt").input_ids
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=budget, do_sample=False,
                                     stopping_criteria=StoppingCriteriaList([_StopAtCallEnd(tokenizer, ids.shape[1], stop)]),
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            new = out[0, ids.shape[1]:]
            budget -= len(new)
            chunk = tokenizer.decode(new, skip_special_tokens=True)
            cut = min((chunk.find(s) for s in stop if s in chunk), default=-1)
            if cut >= 0:
                text += chunk[:cut]
                break
            call = find_call(chunk)
            if call is None or len(calls) >= max_calls:
                text += chunk if call is None else chunk[:call.start]
                break
            text += chunk[:call.end]
            result, error = _run_call(call, running, tool_timeout)
            text += format_result(result, error)
            calls.append(ToolUse(call.name, call.argument, result, error))
            if tokenizer.eos_token_id is not None and len(new) and int(new[-1]) == tokenizer.eos_token_id:
                break
    finally:
        for s in started:
            s.close()
    return ToolGeneration(text, calls)
