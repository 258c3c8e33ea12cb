"""Prefixes each line of standard input with the milliseconds since this script started (not part
of CI): `LD_DEBUG=files cutout remove ... 2>&1 | python3 .ci/timeline.py` shows when each library
loads relative to cutout's own messages."""
import sys
import time

start = time.perf_counter()
for line in sys.stdin:
    sys.stdout.write(f"{(time.perf_counter() - start) * 1e3:8.1f} {line}")
sys.stdout.write(f"{(time.perf_counter() - start) * 1e3:8.1f} (end of output: the process has exited)\n")
