"""Summarises `ncu --print-summary per-kernel --csv` output: GPU time per kernel family, per inference."""
import csv, re, sys
from collections import defaultdict

rows = [r for r in csv.reader(open(sys.argv[1])) if r]
head = next(i for i, r in enumerate(rows) if "Kernel Name" in r or "Function Name" in r)
cols = rows[head]
name_col = cols.index("Kernel Name") if "Kernel Name" in cols else cols.index("Function Name")
inv_col = cols.index("Invocations")
avg_col = cols.index("Average")
unit_col = cols.index("Metric Unit") if "Metric Unit" in cols else None
scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "ns": 1e-6, "us": 1e-3, "ms": 1.0}
families = [
    ("convolution (cuDNN/CUTLASS)", r"conv|xmma|fprop|implicit|gemm|cutlass|sm\d+_"),
    ("layout transpose NCHW<->NHWC", r"nhwc|nchw|transpose|Transpose"),
    ("concat", r"[Cc]oncat"),
    ("resize (bilinear)", r"[Rr]esize|[Uu]psample"),
    ("max-pool", r"[Pp]ool"),
    ("cast", r"[Cc]ast"),
    ("relu/add/sigmoid (elementwise)", r"[Rr]elu|[Ss]igmoid|[Aa]dd|[Ee]lementwise|_Binary|_Unary"),
]
total = 0.0
per_family = defaultdict(lambda: [0.0, 0])
per_kernel = []
sigmoid_calls = 0
for r in rows[head + 1:]:
    try:
        inv = int(r[inv_col]); avg = float(r[avg_col].replace(",", ""))
    except (ValueError, IndexError):
        continue
    unit = r[unit_col] if unit_col is not None else "nsecond"
    ms = avg * inv * scale.get(unit, 1e-6)
    name = r[name_col]
    total += ms
    fam = next((f for f, pat in families if re.search(pat, name)), "other")
    per_family[fam][0] += ms; per_family[fam][1] += inv
    per_kernel.append((ms, inv, name[:110]))
    if re.search(r"[Ss]igmoid", name):
        sigmoid_calls += inv
runs = max(sigmoid_calls, 1)
print(f"inferences seen (Sigmoid launches): {runs}; GPU kernel time per inference: {total / runs:.3f} ms")
print(f"{'family':<34} {'ms/inference':>12} {'share':>6} {'kernels/inference':>18}")
for fam, (ms, inv) in sorted(per_family.items(), key=lambda kv: -kv[1][0]):
    print(f"{fam:<34} {ms / runs:>12.3f} {100 * ms / total:>5.1f}% {inv / runs:>18.1f}")
print("top kernels (ms per inference, launches per inference):")
for ms, inv, name in sorted(per_kernel, reverse=True)[:15]:
    print(f"  {ms / runs:7.3f} ms  {inv / runs:6.1f}x  {name}")
