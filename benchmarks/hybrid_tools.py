"""Arithmetic questions to SmolLM2-135M-Instruct with and without the MCP calculator.

Tool use is taught by prompting: a few-shot prompt shows `<tool:calculate>EXPR</tool>`
followed by the injected `<result>VALUE</result>` and the answer. Without tools the same
few-shot format answers directly. A reply is right when its first number after the prompt
(after the result tag when a tool ran) equals the true value. Prompts run in padded batches
through ``generate_with_tools_batch`` (same rules as ``generate_with_tools``, greedy). Goal: >= 30 points higher
with tools.

Run: nice -n 10 timeout 3000 .venv/bin/python benchmarks/hybrid_tools.py [N]  (GRAFTKIT_BENCH_THREADS=1 on a shared machine)
"""

from __future__ import annotations

import os
import random
import re
import sys
import time

import torch

from hybrid_common import write

from graftkit.hybrid import load_base
from graftkit.hybrid.tools.client import CALCULATOR_COMMAND, MCPServerProcess
from graftkit.hybrid.tools.batch import generate_with_tools_batch

BATCH = 25  # prompts per padded forward pass (generate_with_tools_batch)

PLAIN = ("Answer with the number only.\nQ: What is 23 * 19?\nA: 437\nQ: What is 812 + 389?\nA: 1201\n"
         "Q: What is 905 - 478?\nA: 427\n")
TOOLS = ("Use the calculator for arithmetic.\nQ: What is 23 * 19?\nA: <tool:calculate>23 * 19</tool><result>437</result> 437\n"
         "Q: What is 812 + 389?\nA: <tool:calculate>812 + 389</tool><result>1201</result> 1201\n"
         "Q: What is 905 - 478?\nA: <tool:calculate>905 - 478</tool><result>427</result> 427\n")


def questions(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        op = rng.choice(["+", "-", "*"])
        a, b = (rng.randint(100, 999), rng.randint(100, 999)) if op != "*" else (rng.randint(12, 99), rng.randint(12, 99))
        out.append((f"{a} {op} {b}", {"+": a + b, "-": a - b, "*": a * b}[op]))
    return out


def answer(text: str) -> int | None:
    text = text.split("</result>")[-1]
    m = re.search(r"-?\d+", text.replace(",", ""))
    return int(m.group()) if m else None


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    torch.set_num_threads(int(os.environ.get("GRAFTKIT_BENCH_THREADS", "2")))  # 1 on a shared machine
    model, tok = load_base("SmolLM2-135M-Instruct")
    qs = questions(n)
    start = time.perf_counter()
    prompts = [f"Q: What is {expr}?\nA:" for expr, _ in qs]
    with MCPServerProcess(CALCULATOR_COMMAND, timeout=20) as calc:
        plain = generate_with_tools_batch(model, [PLAIN + q for q in prompts], tok, [], max_new_tokens=12, stop=["\n"],
                                          batch_size=BATCH)
        tools = generate_with_tools_batch(model, [TOOLS + q for q in prompts], tok, [calc], max_new_tokens=40, stop=["\n"],
                                          max_calls=1, batch_size=BATCH)
    right = {"plain": sum(answer(g.text) == v for g, (_, v) in zip(plain, qs)),
             "tools": sum(answer(g.text) == v for g, (_, v) in zip(tools, qs))}
    calls = sum(bool(g.calls) for g in tools)
    misses = [{"question": e, "value": v, "text": g.text} for g, (e, v) in zip(tools, qs) if answer(g.text) != v]
    acc = {k: 100 * v / n for k, v in right.items()}
    gain = acc["tools"] - acc["plain"]
    result = {"questions": n, "accuracy_percent": acc, "gain_points": gain, "tool_call_rate": calls / n,
              "seconds": time.perf_counter() - start, "prompting": "3-shot, greedy",
              "batch_size": BATCH, "tool_misses": misses[:20]}
    write("hybrid_tools", result, f"SmolLM2-135M-Instruct, {n} arithmetic questions (3-digit +/-, 2-digit *), 3-shot prompts: "
          f"without tools {acc['plain']:.1f}%, with the MCP calculator {acc['tools']:.1f}% (calls in {100 * calls / n:.0f}% of answers); "
          f"gain {gain:+.1f} points, goal >= +30: {'met' if gain >= 30 else 'NOT met'}")


if __name__ == "__main__":
    main()
