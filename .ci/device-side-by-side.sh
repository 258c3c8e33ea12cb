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
#   (TensorRT for RTX, from `pip download onnxruntime-ep-nv-tensorrt-rtx-cu13==0.5.0`, the plugin and
#    the libraries it loads:) tar -c libonnxruntime_providers_nv_tensorrt_rtx.so libtensorrt_rtx.so.1.7.1 \
#     libtensorrt_onnxparser_rtx.so.1.7.1 libcudart.so.13.4.36 libtensorrt_shim.so | xz -6 \
#     | split -b 58M -d - .device/rtx/part
#   cp a 12 MP JPEG to .device/photo12.jpg
# There, in back-to-back calls (carry .peers and one or two parts a call):
#   bash .ci/device-side-by-side.sh stage          (as often as there are parts)
#   bash .ci/device-side-by-side.sh experiments    (TensorRT-RTX there, cuDNN fusion, start-up)
#   bash .ci/device-side-by-side.sh cutout         (cutout bench + PyTorch eager, ~3 min)
#   bash .ci/device-side-by-side.sh compile u2netp:160,u2netp:320   (torch.compile, ~1 min a config)
#   bash .ci/device-side-by-side.sh compile u2netp:1024,isnet:1024
#   bash .ci/device-side-by-side.sh table
#   bash .ci/device-side-by-side.sh precision      (FP16 against FP32 masks, islands, TF32; needs
#                                                    the shared photos in .device/photos)
set -uo pipefail
stage=/tmp/stage
results=/tmp/side
OUT=${OUT:-/tmp/out}
mkdir -p "$stage/ort" "$stage/isnet" "$stage/rtx" "$results" "$OUT"
cp .ortgpu/part* "$stage/ort/" 2>/dev/null || true
cp .device/isnet/part* "$stage/isnet/" 2>/dev/null || true
cp .device/rtx/part* "$stage/rtx/" 2>/dev/null || true
cp .device/photo12.jpg "$stage/" 2>/dev/null || true
mode=${1:-table}
[ "$mode" = stage ] && { ls -la "$stage"/*; exit 0; }

[ -f /tmp/ort/lib/libonnxruntime.so ] || (cat "$stage"/ort/part* | xz -d | tar -x -C /tmp) || exit 1
mkdir -p /tmp/models
[ -s /tmp/models/isnet-general-use-fp16.onnx ] || cat "$stage"/isnet/part* | xz -d > /tmp/models/isnet-general-use-fp16.onnx
[ -f .device/u2netp.onnx ] && cp .device/u2netp.onnx /tmp/models/
[ -f .device/cutout.xz ] && xz -dkf .device/cutout.xz && cp .device/cutout /tmp/cutout && chmod +x /tmp/cutout
# TensorRT for RTX where cutout looks for it: a tensorrt-rtx folder beside the ONNX Runtime library.
if [ ! -f /tmp/ort/lib/tensorrt-rtx/libonnxruntime_providers_nv_tensorrt_rtx.so ] && ls "$stage"/rtx/part* > /dev/null 2>&1; then
  mkdir -p /tmp/ort/lib/tensorrt-rtx && cat "$stage"/rtx/part* | xz -d | tar -x -C /tmp/ort/lib/tensorrt-rtx
fi
export ORT_DYLIB_PATH=/tmp/ort/lib/libonnxruntime.so
export LD_LIBRARY_PATH=/tmp/ort/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu
export CUTOUT_MODELS_DIR=/tmp/models CUTOUT_CACHE_DIR=/tmp/cutout-cache CUTOUT_DATA_DIR=/tmp/cutout-data

case "$mode" in
  experiments)
    photo=/work/shared/testdata/rembg/fixtures/car-1.jpg
    [ -f "$photo" ] || photo=$(ls .device/*.jpg "$stage"/*.jpg 2>/dev/null | head -1)
    {
      nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv
      echo "--- /sys/class/drm:"; ls -la /sys/class/drm 2>&1
      echo "--- doctor:"; /tmp/cutout doctor 2>&1
      echo "--- remove --ep tensorrt-rtx:"; CUTOUT_LOG=debug /tmp/cutout remove "$stage/photo12.jpg" -o /tmp/rtx.png --ep tensorrt-rtx 2>&1 | grep -v "^\s*$" | tail -25
      echo "--- remove (auto), FP16:"; /tmp/cutout remove "$stage/photo12.jpg" -o /tmp/auto.png --precision fp16 -v 2>&1 | tail -6
      # Would TensorRT-RTX take this GPU if ONNX Runtime discovered it? A fake DRM card (vendor
      # 0x10de) in a private mount namespace answers that apart from the discovery question.
      echo "--- with a DRM card entry ONNX Runtime can read:"
      fake=/tmp/fake-class; rm -rf $fake; mkdir -p $fake
      for entry in /sys/class/*; do [ "$entry" = /sys/class/drm ] || ln -s "$entry" "$fake/$(basename "$entry")"; done
      mkdir -p $fake/drm/card0/device && echo 0x10de > $fake/drm/card0/device/vendor && echo 0x2335 > $fake/drm/card0/device/device
      unshare -m sh -c "mount --bind $fake /sys/class && CUTOUT_LOG=debug /tmp/cutout doctor 2>&1 | sed -n '/TensorRT for RTX/,/^Models/p;/NvTensorRTRTX\|Compute Capability\|compute capabilit/p' && CUTOUT_LOG=debug /tmp/cutout remove $stage/photo12.jpg -o /tmp/rtx2.png --ep tensorrt-rtx 2>&1 | tail -8" 2>&1
    } > "$results/tensorrt-rtx.txt" 2>&1
    tail -40 "$results/tensorrt-rtx.txt"
    {
      for i in 1 2 3; do
        for p in fp32 fp16; do
          s=$(date +%s.%N); /tmp/cutout remove "$stage/photo12.jpg" -o /tmp/o12.png --ep cuda --precision $p -v > /tmp/r.txt 2>&1; e=$(date +%s.%N)
          echo "12 MP remove, CUDA $p, run $i: whole process $(python3 -c "print(round(($e-$s)*1000))") ms"; grep -E "Start-up|decode|Peak" /tmp/r.txt
        done
      done
    } > "$results/startup.txt" 2>&1
    cat "$results/startup.txt"
    /tmp/cutout bench --model u2netp --ep cuda --sizes 160,320,1024 --precisions fp16 --fuse-conv-bias off,on \
      --runs 300 --warmup 30 --json "$results/fusion-u2netp.json" > "$results/fusion.txt" 2>&1
    /tmp/cutout bench --model isnet --ep cuda --sizes 1024 --precisions fp16 --fuse-conv-bias off,on \
      --runs 300 --warmup 30 --json "$results/fusion-isnet.json" >> "$results/fusion.txt" 2>&1
    /tmp/cutout bench --model u2netp --ep cuda --sizes 320 --precisions fp16 --conv-search heuristic --no-cuda-graphs \
      --runs 100 --warmup 10 >> "$results/fusion.txt" 2>&1
    grep -E "^(cuda|provider)|unavailable" "$results/fusion.txt"
    ;;
  startup)
    # Where the whole-process time of one 12 MP photo goes on the CUDA path.
    photo="$stage/photo12.jpg"
    {
      echo "--- tools:"; for t in nsys gdb strace perf; do command -v $t || echo "$t: none"; done
      echo "--- libraries and context, fresh processes:"; python3 .ci/startup-probe.py
      for i in 1 2 3; do
        s=$(date +%s.%N); /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda -v > /tmp/r.txt 2>&1; e=$(date +%s.%N)
        echo "--- CUDA run $i: whole process $(python3 -c "print(round(($e-$s)*1000))") ms"; grep -E "Start-up|decode| px · " /tmp/r.txt
      done
      s=$(date +%s.%N); /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cpu -v > /tmp/r.txt 2>&1; e=$(date +%s.%N)
      echo "--- CPU: whole process $(python3 -c "print(round(($e-$s)*1000))") ms"; grep -E "Start-up|decode" /tmp/r.txt
      echo "--- timeline (LD_DEBUG=files):"
      LD_DEBUG=files /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda -v 2>&1 | python3 .ci/timeline.py \
        | grep -vE "needed by|find library|trying file|search path" | grep -E "init: /| px · |Start-up|decode|dynamically" | head -150
      echo "--- timeline (CUTOUT_LOG=debug):"
      CUTOUT_LOG=debug /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda -v 2>&1 | python3 .ci/timeline.py | cut -c1-220 | head -150
      echo "--- cuDNN API log:"
      CUDNN_LOGLEVEL_DBG=3 CUDNN_LOGDEST_DBG=/tmp/cudnn.log /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda -v 2>&1 | grep Start-up
      python3 .ci/cudnn-log-summary.py /tmp/cudnn.log
      if command -v nsys > /dev/null; then
        nsys profile -t cuda,cudnn,cublas,osrt -o /tmp/startup --force-overwrite true /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda -v > /dev/null 2>&1
        nsys stats -r cuda_api_sum,osrt_sum /tmp/startup.nsys-rep 2>&1 | head -80
      fi
    } > "$results/startup-probe.txt" 2>&1
    cat "$results/startup-probe.txt" | cut -c1-300 | head -400
    ;;
  startup-ab)
    # Whole-process time of one 12 MP photo, CUDA provider: binary A (.device/cutout-a.xz) against
    # this tree's (B), each with cuDNN's heuristic and fixed algorithm, interleaved.
    photo="$stage/photo12.jpg"
    [ -f .device/cutout-a.xz ] && xz -dkf .device/cutout-a.xz && cp .device/cutout-a /tmp/cutout-a && chmod +x /tmp/cutout-a
    {
      for i in 1 2 3 4; do
        for bin in cutout-a cutout; do
          for search in heuristic fixed; do
            for p in fp32 fp16; do
              s=$(date +%s.%N); /tmp/$bin remove "$photo" -o /tmp/o12.png --ep cuda --precision $p --conv-search $search -v > /tmp/r.txt 2>&1; e=$(date +%s.%N)
              echo "$bin $search $p run $i: whole $(python3 -c "print(round(($e-$s)*1000))") ms | $(grep -E "Start-up" /tmp/r.txt) | $(grep -oE "infer [0-9]+ ms, postprocess [0-9]+ ms, encode [0-9]+ ms" /tmp/r.txt)"
            done
          done
        done
      done
      echo "--- ONNX Runtime's log, B, fixed:"
      CUTOUT_LOG=debug /tmp/cutout remove "$photo" -o /tmp/o12.png --ep cuda --conv-search fixed -v 2>&1 | python3 .ci/timeline.py \
        | grep -v "Removing initializer" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200 | head -120
      /tmp/cutout bench --model u2netp --ep cuda --sizes 320,1024 --precisions fp32,fp16 --conv-search exhaustive,heuristic,fixed \
        --no-cuda-graphs --runs 100 --warmup 10 2>&1 | grep -E "^(cuda|provider)|unavailable"
      /tmp/cutout bench --model isnet --ep cuda --sizes 1024 --precisions fp32,fp16 --conv-search exhaustive,heuristic,fixed \
        --no-cuda-graphs --runs 100 --warmup 10 2>&1 | grep -E "^(cuda|provider)|unavailable"
    } > "$results/startup-ab.txt" 2>&1
    cat "$results/startup-ab.txt"
    ;;
  handover)
    # Whole `cutout remove` processes of the 12 MP photo, interleaved: the session's start
    # (binary A = .device/cutout-a.xz with --conv-search heuristic, what remove did before),
    # CUDA forced (fixed algorithm, early context), auto (CPU first, GPU takes over), CPU forced.
    photo="$stage/photo12.jpg"
    [ -f .device/cutout-a.xz ] && xz -dkf .device/cutout-a.xz && cp .device/cutout-a /tmp/cutout-a && chmod +x /tmp/cutout-a
    whole() { local s e; s=$(date +%s.%N); "$@" > /tmp/r.txt 2>&1; local rc=$?; e=$(date +%s.%N); echo "$(python3 -c "print(round(($e-$s)*1000))") ms rc=$rc"; }
    {
      for model in u2netp isnet; do
        for i in 1 2 3 4 5; do
          [ $model = isnet ] && [ $i -gt 3 ] && break
          echo "$model run $i: before $(whole /tmp/cutout-a remove "$photo" -o /tmp/o.png --model $model --ep cuda --conv-search heuristic -v) | $(grep -oE "Start-up [0-9]+" /tmp/r.txt)"
          echo "$model run $i: cuda   $(whole /tmp/cutout remove "$photo" -o /tmp/o.png --model $model --ep cuda -v) | $(grep -oE "Start-up [0-9]+" /tmp/r.txt)"
          echo "$model run $i: auto   $(whole /tmp/cutout remove "$photo" -o /tmp/o.png --model $model -v) | $(grep -oE "infer [0-9]+ ms \([^)]*\)" /tmp/r.txt | tr '\n' ' ') $(grep -E "GPU session|took over" /tmp/r.txt | cut -c1-120 | tr '\n' ' ')"
          echo "$model run $i: cpu    $(whole /tmp/cutout remove "$photo" -o /tmp/o.png --model $model --ep cpu -v) | $(grep -oE "infer [0-9]+ ms" /tmp/r.txt)"
        done
      done
      echo "--- auto, u2netp, one run in full:"; /tmp/cutout remove "$photo" -o /tmp/o.png -v 2>&1 | python3 .ci/timeline.py | cut -c1-400
      echo "--- CUDA, u2netp, one run in full:"; /tmp/cutout remove "$photo" -o /tmp/o.png --ep cuda -v 2>&1 | python3 .ci/timeline.py | cut -c1-300
      echo "--- isnet auto, one run in full:"; /tmp/cutout remove "$photo" -o /tmp/o.png --model isnet -v 2>&1 | python3 .ci/timeline.py | cut -c1-300
      mkdir -p /tmp/ten && for i in 0 1 2 3 4 5 6 7 8 9; do cp "$photo" /tmp/ten/p$i.jpg; done
      for mode in auto cuda cpu; do
        rm -rf /tmp/ten-out; mkdir -p /tmp/ten-out
        echo "--- ten 12 MP photos, $mode: $(whole /tmp/cutout remove /tmp/ten -o /tmp/ten-out --ep $mode -v)"
        grep -oE "infer [0-9]+ ms \([^)]*\)|GPU session.*|done in.*" /tmp/r.txt | cut -c1-160 | tr '\n' ';'; echo
      done
    } > "$results/handover.txt" 2>&1
    cat "$results/handover.txt"
    ;;
  precision)
    # FP16 against FP32 masks on the shared photos (.device/photos), and what the FP32 islands
    # cost: binary A (.device/cutout-a.xz: FP32 convolutions in plain TF32, FP16 without islands)
    # against the current one (u2netp's island and TF32 split), with the CPU provider's exact
    # FP32 as the reference; then the network alone, interleaved.
    [ -f .device/cutout-a.xz ] && xz -dkf .device/cutout-a.xz && cp .device/cutout-a /tmp/cutout-a && chmod +x /tmp/cutout-a
    {
      for model in u2netp:160 u2netp:320 u2netp:1024 isnet:1024; do
        name=${model%%:*}; side=${model##*:}; m=/tmp/masks/$name-$side
        for run in cutout-a:cuda:fp32 cutout-a:cuda:fp16 cutout:cuda:fp32 cutout:cuda:fp16 cutout:cpu:fp32; do
          IFS=: read -r bin ep p <<< "$run"
          dir=$m/$bin-$ep-$p; rm -rf "$dir"; mkdir -p "$dir"
          /tmp/$bin remove .device/photos -o "$dir/" --mask-only --model $name --size $side --ep $ep --precision $p \
            > /tmp/r.txt 2>&1 || { echo "$run $model failed:"; tail -3 /tmp/r.txt; }
          [ $bin = cutout ] && [ $ep = cuda ] && head -1 /tmp/r.txt | cut -c1-300
        done
        python3 .ci/mask-diff.py "$name @ $side" $m/cutout-a-cuda-fp32 $m/cutout-a-cuda-fp16 $m/cutout-cuda-fp32 $m/cutout-cuda-fp16 \
          $m/cutout-cpu-fp32 $m/cutout-a-cuda-fp32 $m/cutout-cpu-fp32 $m/cutout-cuda-fp32 $m/cutout-cpu-fp32 $m/cutout-cuda-fp16
      done
      for i in 1 2; do
        for bin in cutout-a cutout; do
          echo "--- bench $bin, round $i"
          /tmp/$bin bench --model u2netp --ep cuda --sizes 160,320,1024 --precisions fp32,fp16 --runs 300 --warmup 30 2>&1 | grep -E "^cuda +fp|unavailable"
          /tmp/$bin bench --model isnet --ep cuda --sizes 1024 --precisions fp32,fp16 --runs 300 --warmup 30 2>&1 | grep -E "^cuda +fp|unavailable"
        done
      done
    } > "$results/precision.txt" 2>&1
    cp "$results/precision.txt" "$OUT/"
    cat "$results/precision.txt"
    ;;
  ncu)
    # Every kernel of FP16 inferences at 320 px, without and with cuDNN's conv+bias fusion.
    for fuse in off on; do
      timeout 280 ncu --metrics gpu__time_duration.sum --print-summary per-kernel --csv \
        /tmp/cutout bench --model u2netp --ep cuda --sizes 320 --precisions fp16 --fuse-conv-bias $fuse \
        --no-cuda-graphs --conv-search heuristic --runs 3 --warmup 0 > "$results/ncu-320-fp16-bias-$fuse.csv" 2> "$results/ncu-$fuse.err"
      python3 .ci/ncu-summary.py "$results/ncu-320-fp16-bias-$fuse.csv" > "$results/ncu-320-fp16-bias-$fuse.txt" 2>&1
      echo "== fuse_conv_bias $fuse"; cat "$results/ncu-320-fp16-bias-$fuse.txt"
    done
    ;;
  cutout)
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$results/gpu.txt" 2>&1
    # BENCH_FLAGS: extra `cutout bench` flags (one variant per row, e.g. `--upsample conv`).
    /tmp/cutout bench --model u2netp --ep cuda --sizes 160,320,1024 --precisions fp32,fp16 ${BENCH_FLAGS:-} \
      --runs 300 --warmup 30 --json "$results/cutout-u2netp.json" > "$results/cutout.txt" 2>&1
    /tmp/cutout bench --model isnet --ep cuda --sizes 1024 --precisions fp32,fp16 ${BENCH_FLAGS:-} \
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
