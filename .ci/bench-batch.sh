#!/usr/bin/env bash
# A folder through `cutout remove -v`: photos a second, how busy the cores were, each stage's busy
# time summed over the photos (wall time of that stage's thread, so stages on several threads can
# add up to more than the batch's wall time), and the peak resident memory. With REMBG set to a
# rembg executable, `rembg p` runs on the same folder with the same u2netp weights right after, and
# the ratio is printed (the machines are shared and noisy; only a ratio from one run is a figure).
#
#   bash .ci/bench-batch.sh DIR [cutout remove options…]
#   CUTOUT=path/to/cutout REMBG=/tmp/rembg-venv/bin/rembg bash .ci/bench-batch.sh /tmp/b24
#
# rembg 2.0.86 takes a custom model only from ~/.rembg: copy u2netp.onnx to
# ~/.rembg/u2netp-custom.onnx first.
set -euo pipefail
dir=${1:?usage: bench-batch.sh DIR [cutout remove options]}
shift
bin=${CUTOUT:-target/release/cutout}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
log=$out/log
cores=$(nproc)
TIMEFORMAT='%R %U %S'
times=$( { time "$bin" remove -v "$dir" -o "$out/cutouts" "$@" > /dev/null 2> "$log"; } 2>&1 )
read -r wall user sys <<< "$times"
awk -v wall="$wall" -v user="$user" -v sys="$sys" -v cores="$cores" -v args="$*" '
  / → .*decode / {
    n++
    for (i = 1; i <= NF; i++) {
      if ($i == "decode" || $i == "preprocess" || $i == "infer" || $i == "postprocess" || $i == "encode") {
        busy[$i] += $(i + 1)
      }
      if ($i ~ /^\(/ && $(i - 3) == "infer") provider[$i]++
    }
  }
  /^Peak resident memory/ { peak = $4 }
  END {
    printf "cutout remove %s: %d photos in %.2f s, %.1f photos/s, cores busy %.0f %% ((user+sys)/(wall x %d)), peak %s MB\n",
      args, n, wall, n / wall, 100 * (user + sys) / (wall * cores), cores, peak
    printf "  stage busy (s, summed over photos): decode %.1f, preprocess %.1f, infer %.1f, postprocess %.1f, encode %.1f\n",
      busy["decode"] / 1e3, busy["preprocess"] / 1e3, busy["infer"] / 1e3, busy["postprocess"] / 1e3, busy["encode"] / 1e3
    for (p in provider) printf "  infer on %s: %d photos\n", p, provider[p]
  }' "$log"
grep -E "^error:" "$log" | head -5 || true
if [ -n "${REMBG:-}" ]; then
  mkdir -p "$out/rembg"
  rtimes=$( { time "$REMBG" p -m u2net_custom -x "{\"model_path\": \"$HOME/.rembg/u2netp-custom.onnx\"}" "$dir" "$out/rembg" > /dev/null 2>&1; } 2>&1 )
  read -r rwall _ _ <<< "$rtimes"
  awk -v c="$wall" -v r="$rwall" 'BEGIN { printf "rembg p, same folder and weights: %.2f s; cutout is %.2fx faster\n", r, r / c }'
fi
