#!/usr/bin/env python3
"""Where FP16 moves a model's masks, found on the CPU (not part of CI).

FP16 on the GPU rounds every weight and every tensor between nodes to float16, while
convolutions accumulate in float32. This emulates that with ONNX Runtime's CPU provider on the
FP32 model: weights rounded to float16, and a float32 -> float16 -> float32 Cast pair after every
node that makes float data, except inside the islands being tried. Masks are compared with plain
FP32 on the shared photos, the way the FP16 bar is stated (mean difference in grey levels, IoU at
128), at the model's size or SIDE.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install onnx onnxruntime numpy pillow
    /tmp/venv/bin/python .ci/fp16-sensitivity.py stages            # keep one stage in FP32 at a time
    /tmp/venv/bin/python .ci/fp16-sensitivity.py islands 96-97      # none against convolutions 96-97
    SIDE=160 /tmp/venv/bin/python .ci/fp16-sensitivity.py islands 96-97

It found u2netp's island (models/manifest.toml): keeping stage2d in FP32 removed nearly all of
the error, and within it the path from convolution 96 (rebnconv2d) to 97 (rebnconv1d).
"""
import glob
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

SHARED = os.environ.get("SHARED", os.path.join(os.path.dirname(__file__), "../../shared"))
MODEL = os.environ.get("MODEL", os.path.join(SHARED, "models/u2netp.onnx"))
SIDE = int(os.environ.get("SIDE", "320"))
PHOTOS = sorted(
    p for d in ("rembg/fixtures", "u2net/images", "ecssd/images") for p in glob.glob(os.path.join(SHARED, "testdata", d, "*"))
)


def session(model):
    options = ort.SessionOptions()
    # Optimisations off: they would fold the Cast pairs away.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def island_nodes(graph, pairs):
    """Node indices from convolution a to b (graph order) and every node on a path between."""
    convs = [i for i, n in enumerate(graph.node) if n.op_type == "Conv"]
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    consumers = {}
    for i, n in enumerate(graph.node):
        for t in n.input:
            consumers.setdefault(t, []).append(i)

    def reach(start, step):
        seen, stack = {start}, [start]
        while stack:
            for j in step(stack.pop()):
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        return seen

    nodes = set()
    for a, b in pairs:
        after = reach(convs[a], lambda i: [j for o in graph.node[i].output for j in consumers.get(o, [])])
        before = reach(convs[b], lambda i: [producer[t] for t in graph.node[i].input if t in producer])
        nodes |= after & before
    return nodes


def emulated_fp16(keep_fp32=lambda index, node: False):
    model = onnx.shape_inference.infer_shapes(onnx.load(MODEL))
    graph = model.graph
    floats = {v.name for v in graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    outputs = {o.name for o in graph.output}
    kept = {i for i, n in enumerate(graph.node) if keep_fp32(i, n)}
    kept_inputs = {t for i in kept for t in graph.node[i].input}
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT and t.name not in kept_inputs:
            rounded = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
            t.CopyFrom(numpy_helper.from_array(rounded, t.name))
    nodes = []
    for i, n in enumerate(graph.node):
        nodes.append(n)
        if i in kept:
            continue
        for k, out in enumerate(list(n.output)):
            if out in outputs or out not in floats:
                continue
            n.output[k] = out + "__exact"
            nodes.append(helper.make_node("Cast", [out + "__exact"], [out + "__half"], to=TensorProto.FLOAT16))
            nodes.append(helper.make_node("Cast", [out + "__half"], [out], to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    return session(model)


def preprocess(path):
    image = Image.open(path).convert("RGB")
    x = np.asarray(image.resize((SIDE, SIDE), Image.LANCZOS), dtype=np.float32)
    x = x / max(float(x.max()), 1e-6)
    x = (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return image.size, x.transpose(2, 0, 1)[None].astype(np.float32)


def mask(sess, x, size):
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0][0, 0]
    y = (y - y.min()) / max(float(y.max() - y.min()), 1e-6)
    return np.asarray(Image.fromarray((y * 255).astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float64)


def compare(variants):
    inputs = [preprocess(p) for p in PHOTOS]
    exact = session(onnx.load(MODEL))
    references = [mask(exact, x, size) for size, x in inputs]
    print(f"{len(PHOTOS)} photos at {SIDE} px, emulated FP16 against FP32:")
    for name, keep in variants:
        sess = emulated_fp16(keep)
        rows = []
        for path, (size, x), a in zip(PHOTOS, inputs, references):
            b = mask(sess, x, size)
            union = ((a >= 128) | (b >= 128)).sum()
            rows.append((os.path.basename(path), np.abs(a - b).mean(), ((a >= 128) & (b >= 128)).sum() / max(union, 1)))
        worst = max(rows, key=lambda r: r[1])
        print(
            f"  {name:<28} mean {np.mean([r[1] for r in rows]):.3f}  worst {worst[1]:.3f} ({worst[0]})"
            f"  worst IoU {min(r[2] for r in rows):.4f}",
            flush=True,
        )


def stage(node):
    parts = node.name.split("/")
    return parts[1] if len(parts) > 2 else "(top)"


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stages"
    if mode == "stages":
        names = sorted({stage(n) for n in onnx.load(MODEL).graph.node})
        compare([("none", lambda i, n: False)] + [(s, lambda i, n, s=s: stage(n) == s) for s in names])
    elif mode == "islands":
        pairs = [tuple(int(v) for v in arg.split("-")) for arg in sys.argv[2:]]
        graph = onnx.load(MODEL).graph
        kept = island_nodes(graph, pairs)
        print("kept in FP32:", ", ".join(graph.node[i].name or graph.node[i].op_type for i in sorted(kept)))
        compare([("none", lambda i, n: False), ("islands " + " ".join(sys.argv[2:]), lambda i, n: i in kept)])
    else:
        sys.exit(__doc__)
