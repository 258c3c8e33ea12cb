#!/usr/bin/env bash
# cutout against its PyTorch peer on the lent NVIDIA machine, in one lease (not part of CI): the
# network alone, batch 1, input on the GPU, PhotoRoom's method (warm-up, synchronised runs, min
# and median), for u2netp at 160/320/1024 px and isnet at 1024 px, FP32 and FP16:
#   cutout bench (CUDA provider)  ·  PyTorch eager (cudnn.benchmark)  ·
#   torch.compile(mode="reduce-overhead") with inductor freezing.
# Writes side-by-side.md (the table with the ratios) and every row as JSON to $OUT.
#
# Here, first (the peers' architectures are read at run time, never committed):
#   mkdir -p .peers/U-2-Net/model .peers/DIS/IS-Net/models
#   (public github.com/xuebinqin/U-2-Net model/u2net.py and github.com/xuebinqin/DIS
#    IS-Net/models/isnet.py into those folders)
#   ../shared/device/stage-ort-gpu.sh                           (-> .ortgpu/partNN)
#   mkdir -p .device/isnet && xz -T0 -6 -c ~/.local/share/cutout/models/isnet-general-use-fp16.onnx \
#     | split -b 58M -d - .device/isnet/part
#   strip -o .device/cutout target/release/cutout && xz -f .device/cutout
#   cp ../shared/models/u2netp.onnx .device/
# There, in back-to-back calls (carry .peers and one or two parts a call):
#   bash .ci/device-side-by-side.sh stage          (as often as there are parts)
#   bash .ci/device-side-by-side.sh cutout         (cutout bench + PyTorch eager, ~3 min)
#   bash .ci/device-side-by-side.sh compile u2netp:160,u2netp:320   (torch.compile, ~1 min a config)
#   bash .ci/device-side-by-side.sh compile u2netp:1024,isnet:1024
#   bash .ci/device-side-by-side.sh table
set -uo pipefail
stage=/tmp/stage
results=/tmp/side
OUT=${OUT:-/tmp/out}
mkdir -p "$stage/ort" "$stage/isnet" "$results" "$OUT"
cp .ortgpu/part* "$stage/ort/" 2>/dev/null || true
cp .device/isnet/part* "$stage/isnet/" 2>/dev/null || true
mode=${1:-table}
[ "$mode" = stage ] && { ls -la "$stage"/*; exit 0; }

[ -f /tmp/ort/lib/libonnxruntime.so ] || (cat "$stage"/ort/part* | xz -d | tar -x -C /tmp) || exit 1
mkdir -p /tmp/models
[ -s /tmp/models/isnet-general-use-fp16.onnx ] || cat "$stage"/isnet/part* | xz -d > /tmp/models/isnet-general-use-fp16.onnx
[ -f .device/u2netp.onnx ] && cp .device/u2netp.onnx /tmp/models/
[ -f .device/cutout.xz ] && xz -dkf .device/cutout.xz && cp .device/cutout /tmp/cutout && chmod +x /tmp/cutout
export ORT_DYLIB_PATH=/tmp/ort/lib/libonnxruntime.so
export LD_LIBRARY_PATH=/tmp/ort/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export CUTOUT_MODELS_DIR=/tmp/models CUTOUT_CACHE_DIR=/tmp/cutout-cache CUTOUT_DATA_DIR=/tmp/cutout-data

case "$mode" in
  cutout)
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$results/gpu.txt" 2>&1
    /tmp/cutout bench --model u2netp --ep cuda --sizes 160,320,1024 --precisions fp32,fp16 \
      --runs 300 --warmup 30 --json "$results/cutout-u2netp.json" > "$results/cutout.txt" 2>&1
    /tmp/cutout bench --model isnet --ep cuda --sizes 1024 --precisions fp32,fp16 \
      --runs 300 --warmup 30 --json "$results/cutout-isnet.json" >> "$results/cutout.txt" 2>&1
    python3 .ci/peer-torch.py --modes eager --json "$results/peer.json" > "$results/peer-eager.txt" 2>&1
    tail -5 "$results/cutout.txt" "$results/peer-eager.txt"
    ;;
  compile)
    python3 .ci/peer-torch.py --modes compile --configs "${2:?configs}" --json "$results/peer.json" \
      >> "$results/peer-compile.txt" 2>&1
    tail -4 "$results/peer-compile.txt"
    ;;
  table)
    python3 - "$results" > "$results/side-by-side.md" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
cutout = {}
for f in ("cutout-u2netp.json", "cutout-isnet.json"):
    p = d / f
    if not p.exists():
        continue
    doc = json.loads(p.read_text())
    model = "isnet" if "isnet" in f else "u2netp"
    for r in doc["rows"]:
        if not r.get("error"):
            cutout[(model, r["size_px"], r["precision"])] = r
peer = {(r["model"], r["side_px"], r["precision"], r["mode"]): r
        for r in json.loads((d / "peer.json").read_text())} if (d / "peer.json").exists() else {}
gpu = (d / "gpu.txt").read_text().splitlines()[-1] if (d / "gpu.txt").exists() else "?"
print(f"GPU: {gpu}\n")
print("| model @ px | precision | cutout min / median | eager min / median | torch.compile min / median | cutout ÷ compile (min) | eager FP32 ÷ cutout (min) |")
print("|---|---|---|---|---|---|---|")
def cell(r, a="min_ms", b="median_ms"):
    return f"{r[a]:.2f} / {r[b]:.2f} ms" if r else "–"
for model, side in (("u2netp", 160), ("u2netp", 320), ("u2netp", 1024), ("isnet", 1024)):
    for precision in ("fp32", "fp16"):
        c = cutout.get((model, side, precision))
        e = peer.get((model, side, precision, "eager"))
        t = peer.get((model, side, precision, "compile"))
        e32 = peer.get((model, side, "fp32", "eager"))
        ratio = f"{c['min_ms'] / t['min_ms']:.2f}×" if c and t else "–"
        speedup = f"{e32['min_ms'] / c['min_ms']:.1f}×" if c and e32 else "–"
        print(f"| {model} @ {side} | {precision.upper()} | {cell(c)} | {cell(e)} | {cell(t)} | {ratio} | {speedup} |")
PY
    cat "$results/side-by-side.md"
    ;;
esac
cp "$results"/* "$OUT"/ 2>/dev/null
