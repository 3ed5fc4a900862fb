"""``make bench``: HVP/gradient time ratios for both HVP modes, side by side with plain autograd
and the peers (curvlinops, PyHessian) when installed (``pip install -e '.[bench]'``, which
``make bench`` does); the dense-vs-Lanczos crossover of the spectral norm; examples/s per claim;
how long a parallel campaign takes to stop on SIGTERM and Ctrl-C (target ≤ 2 s, idle machine).

Timings are medians over repeats of ``torch.utils.benchmark.Timer`` (which synchronises and
warms up), float64 on the CPU, one thread per process as in the campaign workers.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

from .cases import Case, Problem
from .derivatives import HVPOperator, gradient, hvp_fwd_rev, hvp_rev_rev
from .nets import NetSpec

SIZES = (
    ("small  (d=1, w=16)", NetSpec(8, (16,), 4, "tanh"), 64),
    ("medium (d=3, w=64)", NetSpec(32, (64, 64, 64), 10, "gelu"), 128),
    ("large  (d=4, w=256)", NetSpec(64, (256,) * 4, 10, "silu"), 256),
)


def _median(fn, min_run_time: float) -> float:
    return Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def _plain_autograd(prob: Problem):
    """The same loss's gradient as a user would take it: ``loss.backward`` on the module."""
    import torch.nn.functional as F
    module = prob.module_at_theta0()
    params = list(module.parameters())
    x, y = prob.data[0].x, prob.data[0].y
    return lambda: torch.autograd.grad(F.cross_entropy(module(x), y), params)


def peer_times(prob: Problem, v, min_run_time: float) -> dict:
    """Seconds of a Hessian-vector product by curvlinops and PyHessian (each skipped when not
    installed): curvlinops' ``HessianLinearOperator`` matvec; PyHessian's fresh product (its
    ``hessian`` object builds the gradient graph, then one product) and a further product
    over the kept graph.
    """
    import warnings

    import torch.nn.functional as F
    out = {}
    x, y = prob.data[0].x, prob.data[0].y
    try:
        from curvlinops import HessianLinearOperator
    except ImportError:
        HessianLinearOperator = None
    if HessianLinearOperator is not None:
        module = prob.module_at_theta0()
        H = HessianLinearOperator(module, torch.nn.CrossEntropyLoss(), list(module.parameters()),
                                  [(x, y)], check_deterministic=False)
        try:
            out["curvlinops_hvp_s"] = _median(lambda: H @ v, min_run_time)
        except (NotImplementedError, RuntimeError) as exc:  # e.g. no forward AD for an op
            out["curvlinops_error"] = str(exc).splitlines()[0][:200]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyhessian import hessian as PyHessian
            from pyhessian.utils import hessian_vector_product
    except ImportError:
        PyHessian = None
    if PyHessian is not None:
        module = prob.module_at_theta0()
        vs = list(prob.layout.unflatten(v).values())

        def fresh():
            for q in module.parameters():
                q.grad = None
            h = PyHessian(module, F.cross_entropy, data=(x, y), cuda=False)
            return hessian_vector_product(h.gradsH, h.params, vs)
        out["pyhessian_hvp_s"] = _median(fresh, min_run_time)
        for q in module.parameters():
            q.grad = None
        h = PyHessian(module, F.cross_entropy, data=(x, y), cuda=False)
        out["pyhessian_reused_s"] = _median(lambda: hessian_vector_product(h.gradsH, h.params, vs),
                                            min_run_time)
    return out


def hvp_table(min_run_time: float = 0.5) -> list[dict]:
    """Gradient (ours and plain autograd), jvp∘grad, vjp∘grad, reused-product and peer times
    on the benchmark networks.
    """
    rows = []
    for name, spec, n in SIZES:
        prob = Problem.build(Case(spec=spec, loss="cross_entropy", n=n, seed=0))
        f, th = prob.loss_fn(0), prob.theta0
        v = torch.randn_like(th)
        # ours vs plain autograd, interleaved over 5 rounds, the best median of each: this
        # VM's load drifts by ±30 % over seconds, which a single pair of medians would absorb
        plain = _plain_autograd(prob)
        ta = tg = math.inf
        for _ in range(5):
            ta = min(ta, _median(plain, min_run_time / 5))
            tg = min(tg, _median(lambda: gradient(f, th), min_run_time / 5))
        tf = _median(lambda: hvp_fwd_rev(f, th, v), min_run_time)
        tr = _median(lambda: hvp_rev_rev(f, th, v), min_run_time)
        op = HVPOperator(f, th)  # linearised once; each further product reuses the pullback
        tu = _median(lambda: op(v), min_run_time)
        peers = peer_times(prob, v, min_run_time)
        rows.append({"size": name, "params": spec.num_params, "grad_ms": tg * 1e3,
                     "autograd_ms": ta * 1e3, "grad_over_autograd": tg / ta,
                     "fwd_rev_ms": tf * 1e3, "rev_rev_ms": tr * 1e3, "reused_ms": tu * 1e3,
                     "fwd_rev_ratio": tf / tg, "rev_rev_ratio": tr / tg, "reused_ratio": tu / tg,
                     **peers})
    return rows


SPECTRUM_WIDTHS = ((4, 1), (8, 2), (12, 2), (16, 3), (24, 3), (32, 3))


def spectrum_crossover(repeats: int = 3) -> list[dict]:
    """Seconds of ‖∇²L‖₂ by the dense path and by Lanczos (tol 1e-12, one linearisation) on
    networks of growing p (tanh, cross-entropy, n = 32), the products Lanczos took and its
    relative difference from the dense value: where ``spectrum.DENSE_MAX`` comes from.
    """
    from .spectrum import hessian_spectral_norm_dense, lanczos_top
    rows = []
    for w, d in SPECTRUM_WIDTHS:
        spec = NetSpec(8, (w,) * d, 4, "tanh")
        prob = Problem.build(Case(spec=spec, loss="cross_entropy", n=32, seed=0))
        f, th = prob.loss_fn(0), prob.theta0
        best_d = best_l = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            dense = hessian_spectral_norm_dense(f, th)[0]
            best_d = min(best_d, time.perf_counter() - t0)
            t0 = time.perf_counter()
            op = HVPOperator(f, th)
            val, _, r = lanczos_top(op, th, tol=1e-12)
            best_l = min(best_l, time.perf_counter() - t0)
        rows.append({"network": f"spectrum p={spec.num_params}", "kind": "spectrum",
                     "params": spec.num_params, "dense_s": best_d, "lanczos_s": best_l,
                     "lanczos_products": op.count, "lanczos_rel_diff": abs(val - dense) / dense,
                     "lanczos_residual_rel": r / dense, "torch": torch.__version__})
    return rows


def bound_cost(min_run_time: float = 0.5) -> list[dict]:
    """Time of computing M(R), G(R) (tvgrad.theory.bound.bounds) vs one forward pass of the loss."""
    from .bound import bounds
    rows = []
    for name, spec, n in SIZES:
        prob = Problem.build(Case(spec=spec, loss="cross_entropy", n=n, seed=0))
        f, th = prob.loss_fn(0), prob.theta0
        tf = _median(lambda: f(th), min_run_time)

        def first():
            prob._spectral_norms = None  # include the one-time certified spectral norms
            bounds(prob, 0.1)
        t1 = _median(first, min_run_time)
        tb = _median(lambda: bounds(prob, 0.1), min_run_time)
        rows.append({"size": name, "forward_ms": tf * 1e3, "first_ms": t1 * 1e3,
                     "bound_ms": tb * 1e3, "ratio_first": t1 / tf, "ratio": tb / tf})
    return rows


def claim_rates(examples: int = 20) -> list[dict]:
    """Examples per second of every claim (``examples`` random examples each)."""
    from .campaign import run_claim
    from .claims import CLAIMS
    rows = []
    for cid, claim in CLAIMS.items():
        t0 = time.perf_counter()
        res = run_claim(claim, max_examples=examples, seed=0, shrink=False)
        dt = time.perf_counter() - t0
        rows.append({"claim": cid, "examples": len(res.records), "seconds": dt,
                     "examples_per_s": len(res.records) / dt})
    return rows


def _stat(pid) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, parent pid, …)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def campaign_children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux ``/proc``)."""
    return {int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and (f := _stat(d.name)) is not None and int(f[1]) == pid}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    f = _stat(pid)
    return f is not None and f[0] != "Z"


def start_campaign(out: Path, timeout: float = 60.0) -> tuple[subprocess.Popen, set[int]]:
    """Start ``tvgrad verify --jobs 2`` on 100 000 examples a claim (hours of work) writing to
    ``out``; return once both workers run, with the process and the workers' pids.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "tvgrad", "verify", "--jobs", "2", "--profile", "dev",
         "--max-examples", "100000", "--no-html", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # a shell's background job (`make test &`, nohup) ignores SIGINT and its children
        # inherit that: the campaign gets the default action, as from a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    workers: set[int] = set()
    while time.time() < deadline and len(workers) < 2:
        workers = {c for c in campaign_children(proc.pid) if "python" in
                   Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")}
        time.sleep(0.2)
    if len(workers) < 2:
        proc.kill()
        raise RuntimeError(f"the campaign's workers did not start within {timeout} s: "
                           f"{proc.communicate()[1].decode(errors='replace')[-2000:]}")
    time.sleep(1.0)  # let them import and start working
    return proc, workers


def stop_latency(sig: int = signal.SIGTERM) -> float:
    """Seconds from ``sig`` to the exit of a parallel campaign in full work (its workers
    killed, its finished runs published). Target: ≤ 2 s on an idle machine.
    """
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        proc, _ = start_campaign(Path(tmp) / "out")
        t0 = time.perf_counter()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        return time.perf_counter() - t0


def bench_row(network: str, params: int, grad_s: float, hvp_s: float, reused_s: float,
              **extra) -> dict:
    """One row of ``reports/bench.json``."""
    return {"network": network, "params": params, "grad_s": grad_s, "hvp_s": hvp_s,
            "hvp_over_grad": hvp_s / grad_s, "reused_hvp_over_grad": reused_s / grad_s,
            "torch": torch.__version__, **extra}


def write_rows(path: str, rows: list[dict]) -> None:
    """Merge ``rows`` into the JSON list at ``path`` (a row replaces the one of the same
    network and dtype), written atomically.
    """
    import os

    from ..io import read_json, write_json
    old = read_json(path) if os.path.exists(path) else []
    keys = {(r["network"], r.get("dtype")) for r in rows}
    write_json(path, [r for r in old if (r["network"], r.get("dtype")) not in keys] + rows)


def main(argv: list[str] | None = None) -> int:
    """``make bench``: print the tables."""
    ap = argparse.ArgumentParser(prog="python -m tvgrad.theory.bench", description=__doc__)
    ap.add_argument("--min-run-time", type=float, default=0.5)
    ap.add_argument("--examples", type=int, default=20, help="examples per claim for rates")
    ap.add_argument("--no-claims", action="store_true", help="skip the examples/s table")
    ap.add_argument("--json", default="reports/bench.json",
                    help="write one row per network here (default reports/bench.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, float64, CPU, 1 thread. Targets: HVP/grad ≤ 2.0×, "
          f"a further product at the same θ ≤ 1.0×\n")
    print(f"{'network':22} {'params':>8} {'grad ms':>9} {'/autograd':>10} {'jvp∘grad/grad':>14} "
          f"{'vjp∘grad/grad':>14} {'reused/grad':>12} {'curvlinops/grad':>16} "
          f"{'PyHessian/grad':>15} {'its reused/grad':>16}")
    table = hvp_table(args.min_run_time)
    na = "—"
    for r in table:
        peer = {k: (f"{r[k] / r['grad_ms'] * 1e3:.2f}×" if k in r else na)
                for k in ("curvlinops_hvp_s", "pyhessian_hvp_s", "pyhessian_reused_s")}
        if "curvlinops_error" in r:
            peer["curvlinops_hvp_s"] = "error¹"
        print(f"{r['size']:22} {r['params']:>8} {r['grad_ms']:>9.3f} "
              f"{r['grad_over_autograd']:>9.2f}× {r['fwd_rev_ratio']:>13.2f}× "
              f"{r['rev_rev_ratio']:>13.2f}× {r['reused_ratio']:>11.2f}× "
              f"{peer['curvlinops_hvp_s']:>16} {peer['pyhessian_hvp_s']:>15} "
              f"{peer['pyhessian_reused_s']:>16}")
    for r in table:
        if "curvlinops_error" in r:
            print(f"¹ curvlinops on {r['size'].split()[0]}: {r['curvlinops_error']}")
    spectrum = spectrum_crossover()
    print(f"\n{'‖∇²L‖₂ of':22} {'dense ms':>9} {'Lanczos ms':>11} {'products':>9} {'rel diff':>9}")
    for r in spectrum:
        print(f"{r['network']:22} {r['dense_s'] * 1e3:>9.1f} {r['lanczos_s'] * 1e3:>11.1f} "
              f"{r['lanczos_products']:>9} {r['lanczos_rel_diff']:>9.1e}")
    if args.json:
        rows = []
        for r in table:
            g = r["grad_ms"] / 1e3
            peers = {k: r[k] for k in ("curvlinops_hvp_s", "pyhessian_hvp_s", "pyhessian_reused_s")
                     if k in r}
            errors = {k: r[k] for k in ("curvlinops_error",) if k in r}
            rows.append(bench_row(
                r["size"].split()[0], r["params"], g, r["rev_rev_ms"] / 1e3, r["reused_ms"] / 1e3,
                fwd_rev_s=r["fwd_rev_ms"] / 1e3, autograd_grad_s=r["autograd_ms"] / 1e3,
                grad_over_autograd=r["grad_over_autograd"], dtype="float64", threads=1, **peers,
                **errors,
                **{k.replace("_s", "_over_grad"): t / g for k, t in peers.items()}))
        write_rows(args.json, rows + spectrum)
        print(f"\nwrote {args.json}")
    print(f"\n{'network':22} {'forward ms':>11} {'first M,G ms':>13} {'/forward':>9} "
          f"{'next R ms':>10} {'/forward':>9}")
    for r in bound_cost(args.min_run_time):
        print(f"{r['size']:22} {r['forward_ms']:>11.3f} {r['first_ms']:>13.3f} "
              f"{r['ratio_first']:>8.2f}× {r['bound_ms']:>10.3f} {r['ratio']:>8.2f}×")
    if not args.no_claims:
        print(f"\n{'claim':28} {'examples':>8} {'seconds':>8} {'examples/s':>11}")
        for r in claim_rates(args.examples):
            print(f"{r['claim']:28} {r['examples']:>8} {r['seconds']:>8.2f} {r['examples_per_s']:>11.1f}")
    if Path("/proc").is_dir():
        print("\nstopping a campaign of 2 workers (target ≤ 2 s, idle machine): " + ", ".join(
            f"{name} {stop_latency(sig):.2f} s" for name, sig in
            (("SIGTERM", signal.SIGTERM), ("Ctrl-C", signal.SIGINT))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
