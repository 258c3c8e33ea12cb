#!/usr/bin/env bash
# Batches on the lent NVIDIA machine (not part of CI: CI has no GPU): 100 photos of 12 MP through
# `cutout remove`, u2netp and IS-Net FP16, `--ep auto` and `--ep cuda`, each summarised by
# .ci/bench-batch.sh (photos/s, cores busy, stage busy times, peak memory), and the build before
# (.device/cutout-old) on the same folder in the same lease, for the ratio.
#
# Here, first (as for .ci/device-isnet.sh):
#   ../shared/device/stage-ort-gpu.sh                      (ONNX Runtime GPU -> .ortgpu/partNN)
#   mkdir -p .device/isnet .device/photos
#   xz -T0 -6 -c ~/.local/share/cutout/models/isnet-general-use-fp16.onnx | split -b 58M -d - .device/isnet/part
#   strip -o .device/cutout target/release/cutout && xz -f .device/cutout
#   mkdir -p .device/lib && cp -L /usr/lib/x86_64-linux-gnu/{libde265.so.0,libdav1d.so.6} .device/lib/
#   strip -o .device/cutout-old OLD_BUILD && xz -f .device/cutout-old     (optional)
#   cp ../shared/models/u2netp.onnx .device/
#   cp ../shared/testdata/{rembg/fixtures,u2net/images,ecssd/images}/* .device/photos/
#   mkdir -p .device/photos12 && for f in .device/photos/*; do convert "$f" -resize '4000x3000!' \
#     -quality 90 ".device/photos12/$(basename "${f%.*}").jpg"; done   (used where PIL is missing;
#     portrait photos come out 4000 x 3000 too: the same pixel count)
# There: carry the parts one or two per call with `bash .ci/device-batch.sh stage`; the last call
# carries the rest (with .device/lib) and runs `bash .ci/device-batch.sh run`. Results go to $OUT/batch.txt.
set -uo pipefail
# shellcheck source=.ci/device-stage.sh
source .ci/device-stage.sh "$@"
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
report=$OUT/batch.txt

# 100 photos of 12 MP: the 20 shared photos, each upscaled (Lanczos) to 4000 x 3000 (or
# 3000 x 4000) in five JPEG qualities, so that no two files are the same.
photos=/tmp/batch100
if [ ! -d "$photos" ]; then
  if ! python3 - "$photos" <<'PY'
import glob, os, sys
from PIL import Image
out = sys.argv[1]
os.makedirs(out)
srcs = sorted(glob.glob('.device/photos/*'))
n = 0
for quality in (88, 90, 92, 94, 96):
    for s in srcs:
        im = Image.open(s).convert('RGB')
        size = (4000, 3000) if im.width >= im.height else (3000, 4000)
        im.resize(size, Image.LANCZOS).save(f'{out}/p{n:03d}.jpg', quality=quality)
        n += 1
print(n, 'photos')
PY
  then
    # No PIL there: the 12 MP upscales made here (.device/photos12), each five times.
    rm -rf "$photos" && mkdir -p "$photos"
    n=0
    for copy in 1 2 3 4 5; do
      for f in .device/photos12/*.jpg; do
        cp "$f" "$(printf '%s/p%03d.jpg' "$photos" "$n")"
        n=$((n + 1))
      done
    done
    echo "$n photos (copies of .device/photos12)"
  fi
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  echo "$(nproc) cores; $(ls "$photos" | wc -l) photos of 12 MP in $photos ($(du -sh "$photos" | cut -f1))"
} > "$report" 2>&1
run() {
  CUTOUT=$1 bash .ci/bench-batch.sh "$photos" "${@:2}" >> "$report" 2>&1
}
# The first run of each configuration also builds the caches (prepared model, cuDNN's search):
# one untimed run of 20 photos each, as a user's second batch would find them.
warm=/tmp/warm20
mkdir -p "$warm" && cp "$photos"/p00[0-9].jpg "$photos"/p01[0-9].jpg "$warm"/ 2>/dev/null
for config in "--ep auto" "--ep cuda" "--model isnet --precision fp16 --ep auto" "--model isnet --precision fp16 --ep cuda"; do
  # shellcheck disable=SC2086
  .device/cutout remove "$warm" -o /tmp/warm-out -q $config > /dev/null 2>&1
  # shellcheck disable=SC2086
  run .device/cutout $config
  if [ -x .device/cutout-old ]; then
    # shellcheck disable=SC2086
    run .device/cutout-old $config
  fi
done
cat "$report"
