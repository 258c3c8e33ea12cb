#!/usr/bin/env bash
# Both models on the lent NVIDIA machine (not part of CI: CI has no GPU): the seed-method bench of
# IS-Net in FP32 and FP16 (as stored, and converted from its FP32 twin) beside u2netp, FP16
# against FP32 masks on the 20 shared photos for both models, rembg parity of IS-Net on CUDA, and
# the whole `cutout remove --model isnet` process.
#
# Here, first:
#   ../shared/device/stage-ort-gpu.sh                      (ONNX Runtime GPU -> .ortgpu/partNN)
#   mkdir -p .device/isnet .device/photos .device/expected
#   xz -T0 -6 -c ~/.local/share/cutout/models/isnet-general-use-fp16.onnx | split -b 58M -d - .device/isnet/part
#   strip -o .device/cutout target/release/cutout && xz -f .device/cutout
#   cp ../shared/models/u2netp.onnx .device/
#   cp ../shared/testdata/{rembg/fixtures,u2net/images,ecssd/images}/* .device/photos/
#   cp ../shared/testdata/rembg/expected_*/* .device/expected/
# There: carry the parts one or two per call with `bash .ci/device-isnet.sh stage`, and the last
# call carries .device and runs `bash .ci/device-isnet.sh run`. Results are written to $OUT.
set -uo pipefail
# shellcheck source=.ci/device-stage.sh
source .ci/device-stage.sh "$@"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bin=.device/cutout

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
$bin models > "$OUT/models.txt" 2>&1

# Masks on CUDA: both models, FP32 and FP16 (IS-Net's FP16 both ways).
for run in "u2netp fp32 stored" "u2netp fp16 stored" "isnet fp32 stored" "isnet fp16 stored" "isnet fp16 twin"; do
  set -- $run
  $bin remove .device/photos -o "/tmp/masks/$1-$2-$3/" --mask-only --ep cuda --model "$1" \
    --precision "$2" --fp16-source "$3" >> "$OUT/masks.log" 2>&1
done
python3 - > "$OUT/masks.txt" 2>&1 <<'PY'
import glob, os
import numpy as np
from PIL import Image
def load(p):
    a = np.asarray(Image.open(p))
    return (a[..., 3] if a.ndim == 3 else a).astype(np.float64)
def compare(ref, other):
    worst_d, worst_iou, ds = 0.0, 1.0, []
    for a in sorted(glob.glob(f'/tmp/masks/{ref}/*.png')):
        x = load(a); y = load(os.path.join(f'/tmp/masks/{other}', os.path.basename(a)))
        d = np.abs(x - y).mean(); u = ((x >= 128) | (y >= 128)).sum()
        iou = ((x >= 128) & (y >= 128)).sum() / max(u, 1)
        worst_d = max(worst_d, d); worst_iou = min(worst_iou, iou); ds.append(d)
    print(f"{other} vs {ref}: {len(ds)} photos, mean diff {np.mean(ds):.3f}, worst {worst_d:.3f} grey levels, worst IoU {worst_iou:.4f}")
compare('u2netp-fp32-stored', 'u2netp-fp16-stored')
compare('isnet-fp32-stored', 'isnet-fp16-stored')
compare('isnet-fp32-stored', 'isnet-fp16-twin')
for run in ('isnet-fp32-stored', 'isnet-fp16-stored', 'isnet-fp16-twin'):
    ds = []
    for name in ('anime-girl-1', 'car-1', 'cloth-1', 'plants-1'):
        ds.append(np.abs(load(f'/tmp/masks/{run}/{name}.png') - load(f'.device/expected/{name}.isnet.png')).mean())
    print(f"{run} on CUDA vs rembg's IS-Net masks: " + ", ".join(f"{d:.3f}" for d in ds))
PY

# The seed's method: IS-Net at its one size, FP32 and both FP16 graphs; u2netp beside it.
$bin bench --model isnet --ep cuda --precisions fp32,fp16 --fp16-source stored,twin --runs 300 \
  --warmup 30 --photo .device/photos/car-1.jpg --json "$OUT/bench-isnet.json" > "$OUT/bench.txt" 2>&1
$bin bench --model u2netp --ep cuda --sizes 320,1024 --precisions fp32,fp16 --runs 300 --warmup 30 \
  --json "$OUT/bench-u2netp.json" >> "$OUT/bench.txt" 2>&1

{
  echo "== whole process, isnet, auto provider, FP16, 3 runs"
  for i in 1 2 3; do /usr/bin/time -f "%e s wall" $bin remove .device/photos/car-1.jpg -o /tmp/o.png --model isnet --precision fp16 -v 2>&1 | tail -4; done
} > "$OUT/remove.txt" 2>&1
cat "$OUT/gpu.txt" "$OUT/masks.txt" "$OUT/bench.txt" "$OUT/remove.txt"
