"""Scan speed at sequence 4096: graftkit's chunked (two-level) and parallel (doubling) scans
against the sequential reference loop, and graftkit's SelectiveSSM layer against
transformers' MambaMixer pure-PyTorch fallback at equal size. Goal: >= 5x the sequential loop.

Run: nice -n 10 timeout 900 .venv/bin/python benchmarks/hybrid_scan.py
"""

from __future__ import annotations

import torch

from hybrid_common import timed, write

from graftkit.hybrid.ssm import SSMConfig, build_ssm, scan_chunked, scan_parallel, scan_sequential

LENGTH = 4096


def scans(d_inner: int, d_state: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, LENGTH, d_inner, d_state, generator=g) * 0.5 + 0.5
    b = torch.randn(1, LENGTH, d_inner, d_state, generator=g)
    ref = scan_sequential(a, b)
    err = float(max((scan_chunked(a, b) - ref).abs().max(), (scan_parallel(a, b) - ref).abs().max()))
    out = {"sequential_s": timed(lambda: scan_sequential(a, b), 1), "chunked_s": timed(lambda: scan_chunked(a, b), 1),
           "parallel_s": timed(lambda: scan_parallel(a, b), 1), "max_abs_err_vs_sequential": err}
    out["chunked_speedup"] = out["sequential_s"] / out["chunked_s"]
    out["parallel_speedup"] = out["sequential_s"] / out["parallel_s"]
    return out


def layers(d_model: int, d_state: int) -> dict[str, float]:
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    torch.manual_seed(0)
    x = torch.randn(1, LENGTH, d_model)
    ours = {s: build_ssm(d_model, SSMConfig(d_state=d_state, expand=2, scan=s)) for s in ("sequential", "chunked")}
    mixer = MambaMixer(MambaConfig(hidden_size=d_model, state_size=d_state, expand=2, conv_kernel=4), layer_idx=0)
    params = {"graftkit": sum(p.numel() for p in ours["chunked"].parameters()), "mamba": sum(p.numel() for p in mixer.parameters())}
    with torch.no_grad():
        t = {f"graftkit_{s}_s": timed(lambda m=m: m(x), 1) for s, m in ours.items()}
        t["transformers_mamba_torch_fallback_s"] = timed(lambda: mixer.eval()(x), 1)
    return {**t, "params": params}


def main() -> None:
    torch.set_num_threads(2)
    sizes = [(128, 16), (512, 16)]
    result = {"length": LENGTH, "scans": {f"d_inner{d}_state{n}": scans(d, n) for d, n in sizes},
              "layers": {f"d_model{d}_expand2_state16": layers(d, 16) for d in (64,)}}
    s = result["scans"]
    l = result["layers"]
    line = ("scan at L=4096, chunked vs sequential: " +
            ", ".join(f"{k} {v['chunked_speedup']:.2f}x (parallel doubling {v['parallel_speedup']:.2f}x)" for k, v in s.items()) +
            "; layer forward graftkit chunked / transformers MambaMixer torch fallback: " +
            ", ".join(f"{k} {v['graftkit_chunked_s']:.2f}s / {v['transformers_mamba_torch_fallback_s']:.2f}s" for k, v in l.items()) +
            ". Goal >= 5x vs sequential: " + ("met" if min(v["chunked_speedup"] for v in s.values()) >= 5 else "NOT met at every size"))
    write("hybrid_scan", result, line)


if __name__ == "__main__":
    main()
