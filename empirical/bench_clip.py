"""``make bench`` (CLIP part): gradient and HVP cost of the CLIP problem on this machine.

For the tiny config shipped with tvgrad and for ViT-B-32 with random weights (open_clip, no
download), at batch 4, in float32 and float64, each in a fresh process: the median time of a
full gradient and of a Hessian-vector product (vjp of grad, under the math attention backend),
and the peak resident memory of the process. From them, the expected minutes per example of
each CLIP claim at n = 1024 samples, assuming time linear in n (the cost model is printed with
the table).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

# gradient evaluations and HVP-equivalents per example at the default grid (37 η, chunked), k = 2
# epochs, T = 2 tasks, 2 SGD batches: trajectories + the float64/float32 gradients of the
# rounding estimate + the predicted terms; the HVP column also counts the forward-mode products
# through the steps that give the regime's first-order coefficient (one per step and run, at an
# HVP's cost)
COST_MODEL = {
    "one_epoch_exact": (4, 0),                     # 2 dtypes × (step + loss)
    "multi_epoch_second_order": (37 * 2 + 3, 1 + 2),   # 37 η × k steps; g, ĝ₃₂, ĝ₆₄; Hg; k jvps
    "sgd_epoch_second_order": (37 * 2 + 4, 2 + 2),     # 37 η × N steps ≈ 37 full; N HVPs; N jvps
    "ta_vs_mtl_cross_term": (37 * 2 * 3 + 6, 2 + 6),   # (T + 1) runs; T HVPs; (T + 1)·k jvps
    "clip_trajectory_bound": (3, 3 * 30),          # k steps; ~30 Lanczos HVPs at 3 points
}


def _measure(model: str, dtype: str, batch: int, repeat: int) -> dict:
    import torch
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from tvgrad.empirical.clip_problem import ClipSetup, clip_problem
    from tvgrad.theory.derivatives import HVPOperator, gradient, hvp
    setup = ClipSetup(model=model, max_n=batch)
    prob = clip_problem(setup, ("MNIST",), n=batch, seed=0, dtype=getattr(torch, dtype))
    f, th = prob.loss_fn(0), prob.theta0
    v = torch.randn_like(th)
    times = {}
    op = HVPOperator(f, th)  # linearised once: the cost of each further product at θ
    for name, fn in (("grad_s", lambda: gradient(f, th)), ("hvp_s", lambda: hvp(f, th, v)),
                     ("reused_hvp_s", lambda: op(v))):
        fn()  # warm-up
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        times[name] = sorted(runs)[len(runs) // 2]
    return {"model": model, "dtype": dtype, "batch": batch, "params": prob.num_params,
            "threads": torch.get_num_threads(), **times,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def minutes_per_example(row: dict, n: int = 1024) -> dict:
    """Expected minutes per example of each claim at ``n`` samples (cost model above)."""
    scale = n / row["batch"]
    return {cid: (g * row["grad_s"] + h * row["hvp_s"]) * scale / 60
            for cid, (g, h) in COST_MODEL.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write it as JSON with ``--json``)."""
    ap = argparse.ArgumentParser(prog="python -m tvgrad.empirical.bench_clip", description=__doc__)
    ap.add_argument("--models", default="tvgrad-tiny-ViT,ViT-B-32")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--bench-json", default=None,
                    help="merge one row per model and dtype into this bench.json")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "DTYPE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:  # a child process: one configuration, fresh memory
        print(json.dumps(_measure(args.one[0], args.one[1], args.batch, args.repeat)))
        return 0
    rows = []
    for model in args.models.split(","):
        for dtype in ("float32", "float64"):
            rep = args.repeat if model.startswith("tvgrad") else 1
            r = subprocess.run([sys.executable, "-m", "tvgrad.empirical.bench_clip", "--one",
                                model, dtype, "--batch", str(args.batch), "--repeat", str(rep)],
                               capture_output=True, text=True, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"CLIP problem on the CPU, batch {args.batch}, random weights; median of the repeats\n")
    print(f"{'model':18} {'dtype':8} {'params':>10} {'grad s':>8} {'HVP s':>8} {'HVP/grad':>9} "
          f"{'peak RSS GB':>12}")
    for r in rows:
        print(f"{r['model']:18} {r['dtype']:8} {r['params']:>10} {r['grad_s']:>8.3f} "
              f"{r['hvp_s']:>8.3f} {r['hvp_s'] / r['grad_s']:>8.2f}× {r['peak_rss_gb']:>12.2f}")
    print("\nexpected minutes per example at n = 1024 (time ∝ n; grads and HVPs per example: "
          f"{COST_MODEL})")
    for r in rows:
        m = minutes_per_example(r)
        print(f"{r['model']:18} {r['dtype']:8} " + "  ".join(f"{k}: {v:.1f}" for k, v in m.items()))
    if args.json:
        from tvgrad.io import write_json
        write_json(args.json, [{**r, "minutes_per_example_n1024": minutes_per_example(r)}
                               for r in rows])
    if args.bench_json:
        from tvgrad.theory.bench import bench_row, write_rows
        write_rows(args.bench_json, [bench_row(
            f"{r['model']} batch {r['batch']}", r["params"], r["grad_s"], r["hvp_s"],
            r["reused_hvp_s"], dtype=r["dtype"], threads=r["threads"]) for r in rows])
        print(f"wrote {args.bench_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
