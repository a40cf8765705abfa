#!/usr/bin/env python3
"""Write the part of an event log before a fraction of its time span (the training part).

Usage: split_log.py LOG --fraction 0.8 --out PREFIX.jsonl

`feedflow eval --from F` evaluates on the events at or after first_ts + F * (last_ts - first_ts)
(over every event with a valid integer "ts"); this writes the events strictly before that time,
unchanged and in order, so a model trained on PREFIX never sees the evaluation period.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--fraction", type=float, default=0.8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 0.0 < args.fraction <= 1.0:
        sys.exit("split_log: --fraction must be in (0, 1]")
    times = []
    with open(args.log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                ts = json.loads(line).get("ts")
            except (ValueError, AttributeError):
                ts = None
            times.append(ts if isinstance(ts, int) and not isinstance(ts, bool) else None)
    valid = [t for t in times if t is not None]
    if not valid:
        sys.exit(f"split_log: {args.log} has no event with a ts")
    first, last = min(valid), max(valid)
    cut = first + int((last - first) * args.fraction)
    kept = 0
    with open(args.log, encoding="utf-8", errors="replace") as f, open(args.out, "w") as out:
        for line, ts in zip(f, times):
            if ts is not None and ts < cut:
                out.write(line)
                kept += 1
    print(f"split_log: {kept} of {len(times)} lines before ts {cut} -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
