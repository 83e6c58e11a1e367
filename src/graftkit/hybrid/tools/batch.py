"""``generate_with_tools`` for many prompts at once: the same rules, one padded batch per round.

Each round generates for every unfinished prompt together (left padding, greedy); a row stops
on its own at a closed tool call, a stop string or EOS. Rows that closed a call get the
result injected (through the same MCP servers and error handling) and join the next round.
On a CPU this is several times cheaper than one prompt at a time. Greedy outputs can differ
from the one-prompt path in rare near-ties, because padded batches round differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.errors import HybridError
from graftkit.hybrid.tools.client import MCPServerProcess
from graftkit.hybrid.tools.generate import ToolGeneration, ToolUse, _run_call, _StopAtCallEnd
from graftkit.hybrid.tools.syntax import find_call, format_result


def generate_with_tools_batch(
    model: Any,
    prompts: Sequence[str],
    tokenizer: Any,
    servers: Sequence[MCPServerProcess | Sequence[str] | str] = (),
    *,
    max_new_tokens: int = 64,
    max_calls: int = 4,
    tool_timeout: float = 10.0,
    stop: Sequence[str] = (),
    batch_size: int = 16,
) -> list[ToolGeneration]:
    """One ``ToolGeneration`` per prompt, in order; ``batch_size`` rows share a forward pass."""
    from transformers import StoppingCriteriaList

    if batch_size < 1:
        raise HybridError(f"batch_size must be >= 1, got {batch_size}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise HybridError("the tokenizer has neither a pad nor an EOS token", hint="set tokenizer.pad_token first")
    started = [MCPServerProcess(s, timeout=tool_timeout).start() for s in servers if not isinstance(s, MCPServerProcess)]
    running = [s for s in servers if isinstance(s, MCPServerProcess)] + started
    texts = [""] * len(prompts)
    calls: list[list[ToolUse]] = [[] for _ in prompts]
    budget = [max_new_tokens] * len(prompts)
    side = getattr(tokenizer, "padding_side", "left")
    had_pad_token = tokenizer.pad_token_id is not None
    try:
        tokenizer.padding_side = "left"
        if not had_pad_token:
            tokenizer.pad_token_id = pad
        active = [i for i in range(len(prompts)) if budget[i] > 0]
        while active:
            again = []
            for first in range(0, len(active), batch_size):
                group = active[first:first + batch_size]
                enc = tokenizer([prompts[i] + texts[i] for i in group], return_tensors="pt", padding=True)
                width = enc["input_ids"].shape[1]
                with torch.no_grad():
                    out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                         max_new_tokens=max(budget[i] for i in group), do_sample=False,
                                         stopping_criteria=StoppingCriteriaList([_StopAtCallEnd(tokenizer, width, stop)]),
                                         pad_token_id=pad)
                for row, i in enumerate(group):
                    if _advance(i, out[row, width:][:budget[i]].tolist(), tokenizer, pad, texts, calls, budget, running,
                                stop, max_calls, tool_timeout):
                        again.append(i)
            active = again
    finally:
        tokenizer.padding_side = side
        if not had_pad_token:
            tokenizer.pad_token_id = None
        for s in started:
            s.close()
    return [ToolGeneration(t, c) for t, c in zip(texts, calls)]


def _advance(i: int, new: list[int], tokenizer: Any, pad: int, texts: list[str], calls: list[list[ToolUse]],
             budget: list[int], running: list[MCPServerProcess], stop: Sequence[str], max_calls: int,
             tool_timeout: float) -> bool:
    """Appends row ``i``'s new tokens (and a tool result) to its text; True if it should go on.

    EOS ends a row like a stop string: it is stripped with the padding (when pad == EOS) and the
    row only goes on after a closed tool call."""
    while new and new[-1] == pad:  # a row that finished early is padded to the group's length
        new = new[:-1]
    budget[i] -= max(1, len(new))
    chunk = tokenizer.decode(new, skip_special_tokens=True)
    cut = min((chunk.find(s) for s in stop if s in chunk), default=-1)
    if cut >= 0:
        texts[i] += chunk[:cut]
        return False
    call = find_call(chunk)
    if call is None or len(calls[i]) >= max_calls:
        texts[i] += chunk if call is None else chunk[:call.start]
        return False
    texts[i] += chunk[:call.end]
    result, error = _run_call(call, running, tool_timeout)
    texts[i] += format_result(result, error)
    calls[i].append(ToolUse(call.name, call.argument, result, error))
    return budget[i] > 0  # a row stops right at "</tool>", so no EOS can follow a call in this round
