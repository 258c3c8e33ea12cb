"""Where a cuDNN API log (CUDNN_LOGLEVEL_DBG=3) spends its time (not part of CI): the wall time
between one call and the next is counted against the first, summed by function."""
import collections
import re
import sys
from datetime import datetime

call = re.compile(r"function (\w+)\(\) called")
stamp = re.compile(r"Time: (\S+)")
events = []
name = None
for line in open(sys.argv[1], errors="replace"):
    m = call.search(line)
    if m:
        name = m.group(1)
        continue
    m = stamp.search(line)
    if m and name:
        try:
            events.append((datetime.fromisoformat(m.group(1)), name))
        except ValueError:
            pass
        name = None
if not events:
    print("no timed calls in the log")
    sys.exit(0)
total = collections.Counter()
count = collections.Counter()
for (t, n), (t2, _) in zip(events, events[1:]):
    total[n] += (t2 - t).total_seconds() * 1e3
    count[n] += 1
span = (events[-1][0] - events[0][0]).total_seconds() * 1e3
print(f"{len(events)} calls over {span:.0f} ms")
for n, ms in total.most_common(15):
    print(f"  {ms:8.1f} ms  {count[n]:5d} x {n}")
