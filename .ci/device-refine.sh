#!/usr/bin/env bash
# Edge refinement on the lent NVIDIA machine (not part of CI: CI has no GPU): runs the refine tests of
# tests/integration there (GPU against the CPU reference, ECSSD quality, halos) and times `cutout bench-refine` on a
# 12 MP photo.
#
# Here:  bash .ci/device-refine.sh prepare PHOTO [MASK]
#        builds, then fills .device/refine/ (git-ignored, about 30 MB): the stripped binary and test, the
#        Vulkan loader and libglvnd's EGL libraries from this Debian machine (NVIDIA's Vulkan driver
#        loads them at start; the lent machine lacks them), ONNX Runtime for the CPU provider, the
#        model, ECSSD, and the photo with its mask (made with `cutout remove --mask-only` if not
#        given).
# There: carry .device/refine and run `bash .ci/device-refine.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=.device/refine

prepare() {
    local photo=$1 mask=${2:-}
    cargo build --release
    local test
    test=$(cargo test --release --test integration --no-run --message-format=json 2> /dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "integration" and m.get("executable"):
        print(m["executable"])')
    rm -rf "$dev" /tmp/cutout-refine-pack && mkdir -p "$dev/lib" /tmp/cutout-refine-pack/ort \
        /tmp/cutout-refine-pack/shared/models /tmp/cutout-refine-pack/shared/testdata
    strip -o "$dev/cutout" target/release/cutout && xz -T2 -f "$dev/cutout"
    for so in libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0 libGLX.so.0 libX11.so.6 libX11-xcb.so.1 \
        libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
        cp -L "/usr/lib/x86_64-linux-gnu/$so" "$dev/lib/"
    done
    local pack=/tmp/cutout-refine-pack
    strip -o "$pack/integration" "$test"
    cp "$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}"/cutout/runtime/cpu-*/ | tail -1)"* "$pack/ort/"
    cp ../shared/models/u2netp.onnx "$pack/shared/models/"
    cp -r ../shared/testdata/ecssd "$pack/shared/testdata/"
    tar -C "$pack" -cJf "$dev/refine-test.tar.xz" .
    cp "$photo" "$dev/photo.jpg"
    if [ -n "$mask" ]; then
        cp "$mask" "$dev/mask.png"
    else
        target/release/cutout remove "$photo" --mask-only -o "$dev/mask.png"
    fi
    du -sh "$dev"
}

run() {
    export XDG_RUNTIME_DIR=/tmp LD_LIBRARY_PATH=$PWD/$dev/lib
    OUT=${OUT:-/tmp/out}
    mkdir -p "$OUT" /tmp/refine-test
    xz -dkf "$dev/cutout.xz" && chmod +x "$dev/cutout"
    tar -C /tmp/refine-test -xJf "$dev/refine-test.tar.xz"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    local ort
    ort=$(ls /tmp/refine-test/ort/libonnxruntime.so.* | head -1)
    (cd /tmp/refine-test && CUTOUT_SHARED_DIR=/tmp/refine-test/shared ORT_DYLIB_PATH=$ort \
        ./integration refine:: --test-threads 1 --nocapture) 2>&1 | tee "$OUT/refine-tests.txt" | tail -20
    "$dev/cutout" bench-refine "$dev/photo.jpg" --mask "$dev/mask.png" --runs 50 --warmup 5 \
        --cpu-runs 0 2>&1 | tee "$OUT/bench-refine.txt"
}

case "${1:-}" in
prepare) shift && prepare "$@" ;;
run) run ;;
*) echo "usage: $0 prepare PHOTO [MASK] | run" >&2 && exit 2 ;;
esac
