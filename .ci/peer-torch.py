#!/usr/bin/env python3
"""The PyTorch peer of `cutout bench`, for the side-by-side run on the lent GPU machine.

Times the two networks cutout runs (u2netp from the public U-2-Net repository, IS-Net from the
public DIS repository) the way PhotoRoom's article does: batch 1, input already on the GPU,
warm-up runs, then many runs each synchronised before the clock is read; min and median.
Random weights cost the same as trained ones. Modes: `eager` (cudnn.benchmark on) and `compile`
(torch.compile mode="reduce-overhead", inductor freezing on). The architectures are read at run
time from a git-ignored folder (default `.peers/`, see .ci/device-side-by-side.sh), never
committed here.

    python3 .ci/peer-torch.py --configs u2netp:160,u2netp:320 --precisions fp32,fp16 \
        --modes eager,compile --json out.json
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch

ARCHITECTURES = {
    # model name: (file under the peers folder, class)
    "u2netp": ("U-2-Net/model/u2net.py", "U2NETP"),
    "isnet": ("DIS/IS-Net/models/isnet.py", "ISNetDIS"),
}


def load_class(peers: Path, model: str):
    relative, name = ARCHITECTURES[model]
    path = peers / relative
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401  (isnet.py imports it and does not use it)
        except ImportError:
            stub = types.ModuleType("torchvision")
            stub.models = types.ModuleType("torchvision.models")
            sys.modules["torchvision"] = stub
            sys.modules["torchvision.models"] = stub.models
    spec = importlib.util.spec_from_file_location(f"peer_{model}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def time_runs(fn, x, warmup: int, runs: int):
    for _ in range(warmup):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        fn(x)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1e3)
    return min(times), statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--peers", default=".peers")
    p.add_argument("--configs", default="u2netp:160,u2netp:320,u2netp:1024,isnet:1024")
    p.add_argument("--precisions", default="fp32,fp16")
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--json", required=True)
    args = p.parse_args()

    torch.backends.cudnn.benchmark = True
    import torch._inductor.config as inductor

    inductor.freezing = True
    out_path = Path(args.json)
    rows = json.loads(out_path.read_text()) if out_path.exists() else []
    for config in args.configs.split(","):
        model_name, side = config.split(":")
        side = int(side)
        cls = load_class(Path(args.peers), model_name)
        for precision in args.precisions.split(","):
            dtype = torch.float16 if precision == "fp16" else torch.float32
            for mode in args.modes.split(","):
                # Each configuration compiles afresh: no recompiles with dynamic shapes.
                torch._dynamo.reset()
                torch.manual_seed(0)
                net = cls(3, 1).eval().cuda().to(dtype)
                x = torch.randn(1, 3, side, side, device="cuda", dtype=dtype)
                started = time.perf_counter()
                with torch.inference_mode():
                    fn = torch.compile(net, mode="reduce-overhead", dynamic=False) if mode == "compile" else net
                    fn(x)
                    torch.cuda.synchronize()
                    first_s = time.perf_counter() - started
                    best, median = time_runs(fn, x, args.warmup, args.runs)
                row = {
                    "model": model_name,
                    "side_px": side,
                    "precision": precision,
                    "mode": mode,
                    "min_ms": best,
                    "median_ms": median,
                    "first_run_s": first_s,
                    "runs": args.runs,
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0),
                }
                print(json.dumps(row), flush=True)
                rows = [r for r in rows if (r["model"], r["side_px"], r["precision"], r["mode"])
                        != (model_name, side, precision, mode)] + [row]
                out_path.write_text(json.dumps(rows, indent=1))
                del net, fn
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
