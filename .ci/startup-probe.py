"""Start-up costs on the GPU machine, each in a fresh process (not part of CI).

Times what `cutout remove` pays before its first inference: loading each GPU library, creating
the CUDA context, and cuDNN/cuBLAS handles. Run with LD_LIBRARY_PATH set as for cutout.
"""
import ctypes
import json
import os
import subprocess
import sys
import time

LIBS = [
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcufft.so.12",
    "libcurand.so.10",
    "libcudnn.so.9",
    "libcudnn_graph.so.9",
    "libcudnn_ops.so.9",
    "libcudnn_cnn.so.9",
    "libcudnn_heuristic.so.9",
    "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9",
    "libonnxruntime.so",
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_cuda.so",
]


def ms(t):
    return round((time.perf_counter() - t) * 1e3, 1)


def libraries():
    out = {}
    for name in LIBS:
        t = time.perf_counter()
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            out[name] = ms(t)
        except OSError as e:
            out[name] = f"failed: {e}"
    return out


def context():
    out = {}
    t = time.perf_counter()
    cuda = ctypes.CDLL("libcuda.so.1")
    out["dlopen libcuda"] = ms(t)
    t = time.perf_counter()
    assert cuda.cuInit(0) == 0
    out["cuInit"] = ms(t)
    dev = ctypes.c_int()
    cuda.cuDeviceGet(ctypes.byref(dev), 0)
    ctx = ctypes.c_void_p()
    t = time.perf_counter()
    assert cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
    out["primary context retain"] = ms(t)
    t = time.perf_counter()
    cuda.cuCtxSetCurrent(ctx)
    p = ctypes.c_void_p()
    cuda.cuMemAlloc_v2(ctypes.byref(p), 1 << 20)
    out["first 1 MB allocation"] = ms(t)
    t = time.perf_counter()
    rt = ctypes.CDLL("libcudart.so.13", mode=ctypes.RTLD_GLOBAL)
    rt.cudaFree(None)
    out["cudart attach (cudaFree 0)"] = ms(t)
    t = time.perf_counter()
    blas = ctypes.CDLL("libcublas.so.13", mode=ctypes.RTLD_GLOBAL)
    out["dlopen cublas+cublasLt"] = ms(t)
    h = ctypes.c_void_p()
    t = time.perf_counter()
    blas.cublasCreate_v2(ctypes.byref(h))
    out["cublasCreate"] = ms(t)
    t = time.perf_counter()
    dnn = ctypes.CDLL("libcudnn.so.9", mode=ctypes.RTLD_GLOBAL)
    out["dlopen cudnn"] = ms(t)
    t = time.perf_counter()
    dnn.cudnnCreate(ctypes.byref(h))
    out["cudnnCreate"] = ms(t)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(globals()[sys.argv[1]]()))
        sys.exit(0)
    for what in ("libraries", "context", "context", "libraries"):
        r = subprocess.run([sys.executable, __file__, what], capture_output=True, text=True, env=os.environ)
        print(what, r.stdout.strip() or r.stderr.strip()[-400:])
