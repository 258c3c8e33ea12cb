#!/usr/bin/env bash
# The WebGPU provider on the lent NVIDIA machine (not part of CI: CI has no GPU), beside CUDA in
# the same lease: masks of both models in FP32 and FP16 against the CPU provider's FP32 masks,
# WebGPU's provider options one at a time, the seed-method bench of both providers, and the whole
# `cutout remove` of a 12 MP photo with its start-up.
#
# Here:  bash .ci/device-webgpu.sh prepare
#        builds, runs ../shared/device/stage-ort-gpu.sh (ONNX Runtime GPU -> .ortgpu/partNN) if
#        needed, and fills .device/webgpu (the stripped binary, the WebGPU plugin from
#        `cutout setup`, the Vulkan loader and libglvnd from this Debian machine, u2netp, the
#        shared photos and a 12 MP photo) and .device/isnet/partNN (IS-Net, xz, in parts).
# There: carry the parts with `bash .ci/device-webgpu.sh stage` (one or two per call, back to back),
#        then carry .device/webgpu and run `bash .ci/device-webgpu.sh run check` and
#        `bash .ci/device-webgpu.sh run bench`. Results are written to $OUT.
#
# The lent machine hides /sys/class/drm, so ONNX Runtime discovers no GPU there:
# ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1 lets the plugin pick the adapter itself (Dawn takes the
# NVIDIA GPU through Vulkan; cutout names the adapter it sees).
set -uo pipefail
cd "$(dirname "$0")/.."
dev=.device/webgpu
stage=/tmp/stage

prepare() {
    set -e
    cargo build --release
    [ -f .ortgpu/part00 ] || ../shared/device/stage-ort-gpu.sh
    rm -rf "$dev" && mkdir -p "$dev/lib" "$dev/photos" .device/isnet
    strip -o "$dev/cutout" target/release/cutout && xz -T2 -f "$dev/cutout"
    for so in libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0 libGLX.so.0 libX11.so.6 libX11-xcb.so.1 \
        libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
        cp -L "/usr/lib/x86_64-linux-gnu/$so" "$dev/lib/"
    done
    local plugin
    plugin=$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}"/cutout/runtime/cpu-*/webgpu | tail -1)
    tar -C "$(dirname "$plugin")" -cJf "$dev/webgpu-plugin.tar.xz" webgpu
    cp ../shared/models/u2netp.onnx "$dev/"
    cp ../shared/testdata/rembg/fixtures/* ../shared/testdata/u2net/images/* \
        ../shared/testdata/ecssd/images/* "$dev/photos/"
    python3 -c "from PIL import Image; Image.open('../shared/testdata/rembg/fixtures/cloth-1.jpg').convert('RGB').resize((4000, 3000), Image.LANCZOS).save('$dev/photo12.jpg', quality=92)"
    [ -f .device/isnet/part00 ] || xz -T0 -6 -c "${XDG_DATA_HOME:-$HOME/.local/share}"/cutout/models/isnet-general-use-fp16.onnx |
        split -b 58M -d - .device/isnet/part
    du -sh "$dev" .device/isnet .ortgpu
}

stage() {
    mkdir -p "$stage/ort" "$stage/isnet"
    cp .ortgpu/part* "$stage/ort/" 2>/dev/null || true
    cp .device/isnet/part* "$stage/isnet/" 2>/dev/null || true
    ls -la "$stage"/*
}

unpack() {
    [ -f /tmp/ort/lib/libonnxruntime.so ] || (cat "$stage"/ort/part* | xz -d | tar -x -C /tmp) || exit 1
    [ -f /tmp/ort/lib/webgpu/libonnxruntime_providers_webgpu.so ] ||
        tar -C /tmp/ort/lib -xJf "$dev/webgpu-plugin.tar.xz"
    mkdir -p /tmp/models
    [ -f /tmp/models/isnet-general-use-fp16.onnx ] ||
        cat "$stage"/isnet/part* | xz -d > /tmp/models/isnet-general-use-fp16.onnx
    cp "$dev/u2netp.onnx" /tmp/models/
    [ -x /tmp/cutout ] || { xz -dc "$dev/cutout.xz" > /tmp/cutout && chmod +x /tmp/cutout; }
}

masks() {
    # Mask-only PNGs of every shared photo: $1 model, $2 provider, $3 precision.
    /tmp/cutout remove "$dev/photos" -o "/tmp/masks/$1-$2-$3/" --mask-only --model "$1" --ep "$2" \
        --precision "$3" -q >> "$OUT/masks.log" 2>&1 || echo "masks $*: exit $?" >> "$OUT/masks.log"
}

compare() {
    python3 - "$@" <<'PY'
import glob, os, sys
import numpy as np
from PIL import Image
ref, other = sys.argv[1], sys.argv[2]
ds, ious = [], []
for a in sorted(glob.glob(f'/tmp/masks/{ref}/*.png')):
    b = os.path.join(f'/tmp/masks/{other}', os.path.basename(a))
    if not os.path.exists(b):
        print(f"{other}: no {os.path.basename(b)}"); continue
    x = np.asarray(Image.open(a)).astype(np.float64); y = np.asarray(Image.open(b)).astype(np.float64)
    ds.append(np.abs(x - y).mean())
    u = ((x >= 128) | (y >= 128)).sum(); ious.append(((x >= 128) & (y >= 128)).sum() / max(u, 1))
if ds:
    print(f"{other} vs {ref}: {len(ds)} photos, mean diff {np.mean(ds):.3f}, worst {max(ds):.3f} grey levels, worst IoU {min(ious):.4f}")
PY
}

run() {
    unpack
    export ORT_DYLIB_PATH=/tmp/ort/lib/libonnxruntime.so
    export LD_LIBRARY_PATH=/tmp/ort/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:$PWD/$dev/lib:/usr/lib/x86_64-linux-gnu
    export CUTOUT_MODELS_DIR=/tmp/models CUTOUT_CACHE_DIR=/tmp/cutout-cache CUTOUT_DATA_DIR=/tmp/cutout-data
    export ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER=1 XDG_RUNTIME_DIR=/tmp
    OUT=${OUT:-/tmp/out}
    mkdir -p "$OUT"
    local bin=/tmp/cutout photo=$dev/photos/car-1.jpg
    case "$1" in
    check)
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
        $bin doctor > "$OUT/doctor.txt" 2>&1
        {
            for p in fp32 fp16; do
                echo "== remove --ep webgpu --precision $p"; $bin remove "$photo" -o /tmp/w.png --ep webgpu --precision $p -v 2>&1
                echo "== remove --precision $p (auto)"; $bin remove "$photo" -o /tmp/a.png --precision $p -v 2>&1
            done
        } > "$OUT/remove.txt" 2>&1
        for model in u2netp isnet; do
            masks $model cpu fp32
            masks $model webgpu fp32
            masks $model webgpu fp16
            masks $model cuda fp16
        done
        for model in u2netp isnet; do
            for other in webgpu-fp32 webgpu-fp16 cuda-fp16; do compare "$model-cpu-fp32" "$model-$other"; done
        done > "$OUT/masks.txt" 2>&1
        # WebGPU's options, one at a time, against the defaults (NHWC, graph capture).
        local u="$bin bench --ep webgpu --sizes 320,1024 --precisions fp16 --runs 50 --warmup 5"
        local i="$bin bench --ep webgpu --model isnet --sizes 1024 --precisions fp16 --runs 50 --warmup 5"
        {
            for b in "$u" "$i"; do
                echo "== defaults"; $b 2>&1
                echo "== NCHW"; $b --layouts nchw 2>&1
                echo "== no graph capture"; $b --no-cuda-graphs 2>&1
                for mode in disabled simple bucket; do
                    echo "== storageBufferCacheMode=$mode"; $b --webgpu-option storageBufferCacheMode=$mode 2>&1
                done
                echo "== validationMode=disabled"; $b --webgpu-option validationMode=disabled 2>&1
            done
        } > "$OUT/options.txt" 2>&1
        ;;
    bench)
        local common="--runs 100 --warmup 10 --photo $dev/photo12.jpg"
        {
            $bin bench --ep webgpu,cuda --sizes 160,320,1024 --precisions fp32,fp16 $common --json "$OUT/bench-u2netp.json" 2>&1
            $bin bench --ep webgpu,cuda --model isnet --sizes 1024 --precisions fp32,fp16 $common --json "$OUT/bench-isnet.json" 2>&1
        } > "$OUT/bench.txt" 2>&1
        {
            for ep in webgpu cuda; do
                for model in u2netp isnet; do
                    for i in 1 2 3; do
                        s=$(date +%s%N)
                        $bin remove "$dev/photo12.jpg" -o /tmp/o12.png --ep $ep --model $model --precision fp16 -v > /tmp/r.txt 2>&1
                        e=$(date +%s%N)
                        echo "12 MP remove, $ep $model fp16, run $i: whole process $(( (e - s) / 1000000 )) ms"
                        grep -E "Start-up|→|Peak" /tmp/r.txt
                    done
                done
            done
        } > "$OUT/whole.txt" 2>&1
        ;;
    esac
    for f in "$OUT"/*.txt; do tail -n 5 "$f"; done
}

case "${1:-}" in
prepare) prepare ;;
stage) stage ;;
run) run "${2:-check}" ;;
*) echo "usage: $0 prepare | stage | run check|bench" >&2; exit 2 ;;
esac
