#!/usr/bin/env bash
# Measures cutout on the lent NVIDIA machine (not part of CI: CI has no GPU).
#
# Here, first:  ../shared/device/stage-ort-gpu.sh            (ONNX Runtime GPU → .ortgpu/part*)
#               mkdir -p .device && strip -o .device/cutout target/release/cutout
#               cp ../shared/models/u2netp.onnx .device/ && cp <photos> .device/photos/
# There: carry one .ortgpu/partNN per call with `bash .ci/device-bench.sh stage`, and the last
# part together with .device with `bash .ci/device-bench.sh run`. Results are written to $OUT.
set -uo pipefail
parts=/tmp/ortparts
mkdir -p "$parts"
cp .ortgpu/part* "$parts"/ 2>/dev/null || true
[ "${1:-run}" = stage ] && { ls -la "$parts"; exit 0; }

[ -f /tmp/ort/lib/libonnxruntime.so ] || (cat "$parts"/part* | xz -d | tar -x -C /tmp) || exit 1
export ORT_DYLIB_PATH=/tmp/ort/lib/libonnxruntime.so
export LD_LIBRARY_PATH=/tmp/ort/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export CUTOUT_MODELS_DIR=$PWD/.device CUTOUT_CACHE_DIR=/tmp/cutout-cache CUTOUT_DATA_DIR=/tmp/cutout-data
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bin=.device/cutout

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
$bin doctor > "$OUT/doctor.txt" 2>&1

{
  echo "== auto"; $bin remove .device/photos/car-1.jpg -o /tmp/o-auto.png -v 2>&1; echo "exit $?"
  echo "== tensorrt"; $bin remove .device/photos/car-1.jpg -o /tmp/o-trt.png --ep tensorrt 2>&1; echo "exit $?"
  echo "== cuda fp16"; $bin remove .device/photos/car-1.jpg -o /tmp/o-cuda.png --ep cuda --precision fp16 -v 2>&1; echo "exit $?"
  for photo in .device/photos/car-1.jpg .device/photos-12mp.jpg; do
    echo "== whole process, cuda fp16, $photo, 5 runs"
    for i in 1 2 3 4 5; do /usr/bin/time -f "%e s wall" $bin remove "$photo" -o /tmp/o-whole.png --ep cuda --precision fp16 2>&1 | tail -1; done
  done
  $bin remove .device/photos-12mp.jpg -o /tmp/o-whole.png --ep cuda --precision fp16 -v 2>&1
} > "$OUT/remove.txt" 2>&1

# FP16 against FP32 masks on every shared photo, both on CUDA.
$bin remove .device/photos -o /tmp/m32/ --mask-only --ep cuda --precision fp32 > "$OUT/masks.txt" 2>&1
$bin remove .device/photos -o /tmp/m16/ --mask-only --ep cuda --precision fp16 >> "$OUT/masks.txt" 2>&1
python3 - >> "$OUT/masks.txt" 2>&1 <<'PY'
import glob, os
import numpy as np
from PIL import Image
worst_d, worst_iou, rows = 0.0, 1.0, []
for a in sorted(glob.glob('/tmp/m32/*.png')):
    b = os.path.join('/tmp/m16', os.path.basename(a))
    x = np.asarray(Image.open(a), dtype=np.float64); y = np.asarray(Image.open(b), dtype=np.float64)
    d = np.abs(x - y).mean(); inter = ((x >= 128) & (y >= 128)).sum(); union = ((x >= 128) | (y >= 128)).sum()
    iou = inter / max(union, 1); worst_d = max(worst_d, d); worst_iou = min(worst_iou, iou)
    print(f"{os.path.basename(a):<20} mean diff {d:.3f}  IoU {iou:.4f}")
print(f"{len(glob.glob('/tmp/m32/*.png'))} photos: worst mean diff {worst_d:.3f} grey levels, worst IoU {worst_iou:.4f}")
PY

$bin bench --ep cuda --sizes 160,320,512,1024 --precisions fp32,fp16 --runs 300 --warmup 30 \
  --photo .device/photos-12mp.jpg --json "$OUT/bench-cuda.json" --csv "$OUT/bench-cuda.csv" --chart "$OUT/bench-h100.png" > "$OUT/bench.txt" 2>&1
$bin bench --ep cpu --sizes 160,320 --precisions fp32 --runs 30 --warmup 3 --json "$OUT/bench-cpu.json" >> "$OUT/bench.txt" 2>&1
# Where the FP16 time goes at 320 px: every kernel of one inference (CUDA-graph replay included),
# grouped by kernel name. Heuristic search (one photo) keeps the algorithm search out of it.
if command -v ncu > /dev/null; then
  timeout 300 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
    $bin remove .device/photos/car-1.jpg -o /tmp/o-ncu.png --ep cuda --precision fp16 > "$OUT/ncu-320-fp16.csv" 2> "$OUT/ncu.err"
  echo "ncu exit $?" >> "$OUT/ncu.err"
fi
cat "$OUT/gpu.txt" "$OUT/remove.txt" "$OUT/masks.txt" "$OUT/bench.txt"
tail -3 "$OUT/ncu.err" 2>/dev/null
