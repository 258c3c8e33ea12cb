#!/usr/bin/env bash
# A scripted soak of the desktop app in a real window (Xvfb, wgpu on lavapipe without a GPU, the
# CPU provider): Live on, switching photos, moving the threshold slider, changing the background
# and exporting, for MINUTES (default 30). The app writes a line of figures every 10 s
# (CUTOUT_STATS_LOG); at the end the first line after a minute's warm-up and the last are compared:
# resident memory, the GPU objects and memory wgpu holds, UI frame-time median and p99.
#
#   bash .ci/soak.sh [MINUTES]        (after `cargo build --release`; needs Xvfb and xdotool)
#
# The clicks are placed for the default 1280×800 window on a 1600×1000 screen.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-30}
BIN=${CUTOUT_BIN:-target/release/cutout}
OUT=$(mktemp -d /tmp/cutout-soak.XXXXXX)
SHARED=${CUTOUT_SHARED_DIR:-../shared}
export DISPLAY=:71
Xvfb "$DISPLAY" -screen 0 1600x1000x24 >/dev/null 2>&1 &
XVFB=$!
sleep 1
export CUTOUT_CONFIG_DIR="$OUT/config" CUTOUT_EXPORT_DIR="$OUT/exports" CUTOUT_STATS_LOG="$OUT/stats.jsonl"
"$BIN" "$SHARED"/testdata/rembg/fixtures/*.jpg >"$OUT/app.log" 2>&1 &
APP=$!
trap 'kill $APP $XVFB 2>/dev/null || true' EXIT
sleep 20
click() { xdotool mousemove "$1" "$2" click 1; sleep 0.3; }
click 1016 162 # Live on
end=$((SECONDS + MINUTES * 60))
i=0
while [ $SECONDS -lt $end ]; do
    kill -0 $APP 2>/dev/null || { echo "the app exited"; tail -20 "$OUT/app.log"; exit 1; }
    case $((i % 5)) in
    0) click 105 $((111 + 51 * ((i / 5) % 4))) ;;            # another photo
    1) xdotool mousemove 1015 417 mousedown 1; for x in 1030 1050 1070 1090; do xdotool mousemove $x 417; sleep 0.05; done; xdotool mouseup 1 ;; # threshold
    2) click 20 12; click 50 93 ;;                             # File → Export PNG
    3) click 1016 $(( (i / 5) % 2 == 0 ? 614 : 591 )) ;;       # background: colour / transparent
    4) xdotool mousemove 1090 417 mousedown 1 mousemove 1057 417 mouseup 1 ;; # threshold back
    esac
    i=$((i + 1))
    sleep 2
done
kill $APP
wait $APP 2>/dev/null || true
echo "soak: $MINUTES min, $i actions, $(ls "$OUT/exports" | wc -l) photos exported; figures in $OUT/stats.jsonl"
python3 - "$OUT/stats.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
start = next(r for r in rows if r["t_s"] >= 60)
end = rows[-1]
def show(r):
    g = r["gpu"] or {}
    return (f'resident {r["resident_mb"]:.0f} MB, frame median {r["frame_ms_median"]:.2f} ms, '
            f'p99 {r["frame_ms_p99"]:.2f} ms, GPU: {g.get("texture_views")} texture views, '
            f'{g.get("buffers")} buffers, {g.get("bind_groups")} bind groups, '
            f'{g.get("texture_memory_mb", 0):.1f} MB textures, {g.get("buffer_memory_mb", 0):.1f} MB buffers')
print(f'start (t={start["t_s"]:.0f} s): {show(start)}')
print(f'end   (t={end["t_s"]:.0f} s): {show(end)}')
print(f'resident drift {end["resident_mb"] - start["resident_mb"]:+.1f} MB; '
      f'p99 {100 * (end["frame_ms_p99"] / start["frame_ms_p99"] - 1):+.0f} %')
PY
