#!/usr/bin/env python3
"""Mean difference (grey levels) and IoU at 128 between folders of masks with the same file names.

    mask-diff.py LABEL REFERENCE OTHER [REFERENCE OTHER ...]

prints, per pair, the mean difference over the photos, the worst photo and the worst IoU.
"""
import os
import sys

import numpy as np
from PIL import Image


def compare(a_dir, b_dir):
    rows = []
    for name in sorted(os.listdir(a_dir)):
        a = np.asarray(Image.open(os.path.join(a_dir, name)).convert("L"), dtype=np.float64)
        b = np.asarray(Image.open(os.path.join(b_dir, name)).convert("L"), dtype=np.float64)
        union = ((a >= 128) | (b >= 128)).sum()
        rows.append((name, np.abs(a - b).mean(), ((a >= 128) & (b >= 128)).sum() / max(union, 1)))
    return rows


label, dirs = sys.argv[1], sys.argv[2:]
for reference, other in zip(dirs[::2], dirs[1::2]):
    title = f"{os.path.basename(other.rstrip('/'))} vs {os.path.basename(reference.rstrip('/'))}"
    try:
        rows = compare(reference, other)
    except (OSError, ValueError) as e:
        print(f"{label}: {title}: {e}")
        continue
    worst = max(rows, key=lambda r: r[1])
    worst_iou = min(rows, key=lambda r: r[2])
    print(
        f"{label:<14} {title:<26} {len(rows)} photos: mean {np.mean([r[1] for r in rows]):.3f}, "
        f"worst {worst[1]:.3f} ({worst[0]}), worst IoU {worst_iou[2]:.4f} ({worst_iou[0]})"
    )
