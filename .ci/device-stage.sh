# Sourced by the device scripts (.ci/device-isnet.sh, .ci/device-batch.sh) on the lent machine:
# keeps the parts this call carried under /tmp/stage; with `stage` as the script's argument it
# stops there (the machine stays warm ~30 s for the next call). Otherwise it unpacks ONNX Runtime
# GPU, IS-Net, u2netp and the cutout binaries and sets the environment they run in.
stage=/tmp/stage
mkdir -p "$stage/ort" "$stage/isnet"
cp .ortgpu/part* "$stage/ort/" 2>/dev/null || true
cp .device/isnet/part* "$stage/isnet/" 2>/dev/null || true
[ "${1:-run}" = stage ] && { ls -la "$stage"/*; exit 0; }

[ -f /tmp/ort/lib/libonnxruntime.so ] || (cat "$stage"/ort/part* | xz -d | tar -x -C /tmp) || exit 1
mkdir -p /tmp/models
[ -f /tmp/models/isnet-general-use-fp16.onnx ] || cat "$stage"/isnet/part* | xz -d > /tmp/models/isnet-general-use-fp16.onnx
cp .device/u2netp.onnx /tmp/models/
for b in cutout cutout-old; do
  if [ -f ".device/$b.xz" ]; then xz -dkf ".device/$b.xz" && chmod +x ".device/$b"; fi
done
export ORT_DYLIB_PATH=/tmp/ort/lib/libonnxruntime.so
# .device/lib: the HEVC and AV1 decoders the binary links (libde265.so.0, libdav1d.so.6 from this
# Debian machine; Ubuntu 24.04 there has another dav1d soname). Carry it with the binary.
export LD_LIBRARY_PATH=/tmp/ort/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu:$PWD/.device/lib
export CUTOUT_MODELS_DIR=/tmp/models CUTOUT_CACHE_DIR=/tmp/cutout-cache CUTOUT_DATA_DIR=/tmp/cutout-data
