"""Throughput of finetuning with and without trajectory recording (``make bench-gpu``).

ViT-B-32 (random weights) on synthetic 224×224 images already on the device, batch 128, the
``ilharco`` recipe (AdamW, clipping 1.0), bf16 autocast with fp32 parameters, through the same
:func:`tvgrad.empirical.finetune.train_step` the pipeline uses. Recording adds, per step, the gradient
norm before clipping; per run, one g₀ pass (forward + backward, no update), timed separately,
and per epoch a parameter copy and the Δ_e write, also timed separately.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tvgrad.empirical.bench_gpu", description=__doc__)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)
    import open_clip

    from .finetune import RECIPES, _optimizer, train_step
    from .model import ClassificationHead, ImageClassifier
    dev = args.device
    model = open_clip.create_model(args.model, pretrained=None, device=dev)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    head = ClassificationHead(torch.nn.functional.normalize(torch.randn(100, model.embed_dim if hasattr(model, "embed_dim") else model.text_projection.shape[1]), dim=-1) * 100)
    clf = ImageClassifier(model.visual, head).to(dev)
    del model
    plist = list(clf.visual.parameters())
    r = RECIPES["ilharco"]
    opt, sched = _optimizer(plist, r, 10_000)
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(args.batch_size, 3, size, size, device=dev, generator=gen)
    y = torch.randint(0, 100, (args.batch_size,), device=dev, generator=gen)

    def run(record: bool) -> float:
        for _ in range(args.warmup):
            train_step(clf, x, y, opt, sched, plist, r.clip, record, True)
        torch.cuda.synchronize()
        t = time.perf_counter()
        norms = []
        for _ in range(args.steps):
            _, g = train_step(clf, x, y, opt, sched, plist, r.clip, record, True)
            if g is not None:
                norms.append(g)
        if norms:
            float(torch.stack(norms).sum())  # the one host sync per epoch the pipeline does
        torch.cuda.synchronize()
        return args.steps * args.batch_size / (time.perf_counter() - t)

    plain, rec = [], []
    for _ in range(args.repeats):  # interleaved, so drifts hit both
        plain.append(run(False))
        rec.append(run(True))
    # g₀ pass: forward + backward per batch, no optimizer step
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        clf.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(clf(x), y)
        loss.backward()
    torch.cuda.synchronize()
    g0_ips = args.steps * args.batch_size / (time.perf_counter() - t)
    # per-epoch cost: parameter copy + delta + norm
    torch.cuda.synchronize()
    t = time.perf_counter()
    prev = [p.detach().clone() for p in plist]
    delta = [p.detach() - q for p, q in zip(plist, prev)]
    float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(delta))))
    torch.cuda.synchronize()
    epoch_s = time.perf_counter() - t
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "model": args.model,
           "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats,
           "plain_images_per_s": plain, "recording_images_per_s": rec,
           "median_plain": med(plain), "median_recording": med(rec),
           "recording_overhead": 1 - med(rec) / med(plain),
           "g0_pass_images_per_s": g0_ips, "per_epoch_copy_and_delta_s": epoch_s,
           "params": sum(p.numel() for p in plist)}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
