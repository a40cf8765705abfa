#!/usr/bin/env python3
"""Checks that feedflow's window counts equal the reference engine's, as `scripts/bench reference` runs them.

Usage:
  python3 scripts/compare_windows.py ENGINE_DIR REFERENCE_FILE WINDOW_MS HOP_MS

ENGINE_DIR holds `changes-*.txt` from `dataflows/examples/window_counts.rs` (`+|- post tick count`:
a post's count changed at a tick; a retraction without an addition means it fell to zero).
REFERENCE_FILE holds `post window_id count` lines from `scripts/reference_window.py`. Window i is
tick i + WINDOW_MS/HOP_MS - 1 of the engine. Both are turned into each post's sequence of
(tick, count) changes, zeros included, and compared. Prints one JSON line; exit status 1 when they
differ, 2 for unreadable input.
"""
import glob
import json
import sys
from collections import defaultdict


def engine_changes(directory):
    """{post: [(tick, count), ...]} from the engine's change stream."""
    added, touched = {}, set()
    files = sorted(glob.glob(f"{directory}/changes-*.txt"))
    if not files:
        raise OSError(f"no changes-*.txt in {directory}")
    for path in files:
        with open(path) as f:
            for line in f:
                sign, post, tick, count = line.split()
                key = (int(post), int(tick))
                touched.add(key)
                if sign == "+":
                    added[key] = int(count)
    per_post = defaultdict(list)
    for post, tick in touched:
        per_post[post].append((tick, added.get((post, tick), 0)))
    return {post: sorted(changes) for post, changes in per_post.items()}


def reference_changes(path, width):
    """{post: [(tick, count), ...]} from the reference's windows: gaps are windows with no engagement."""
    windows = defaultdict(list)
    with open(path) as f:
        for line in f:
            post, window_id, count = line.split()
            windows[int(post)].append((int(window_id) + width - 1, int(count)))
    out = {}
    for post, values in windows.items():
        values.sort()
        changes, last_tick, last = [], None, 0
        for tick, count in values:
            if last_tick is not None and tick > last_tick + 1 and last != 0:
                changes.append((last_tick + 1, 0))
                last = 0
            if count != last:
                changes.append((tick, count))
            last_tick, last = tick, count
        if last != 0:
            changes.append((last_tick + 1, 0))
        out[post] = changes
    return out


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    directory, reference, window_ms, hop_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    try:
        engine = engine_changes(directory)
        ref = reference_changes(reference, window_ms // hop_ms)
    except (OSError, ValueError) as err:
        print(f"compare_windows: {err}", file=sys.stderr)
        return 2
    differing = sorted(p for p in set(engine) | set(ref) if engine.get(p) != ref.get(p))
    result = {
        "posts": len(ref),
        "changes": sum(len(c) for c in ref.values()),
        "equal": not differing,
        "differing_posts": len(differing),
    }
    if differing:
        p = differing[0]
        result["first_difference"] = {"post": p, "engine": engine.get(p, [])[:6], "reference": ref.get(p, [])[:6]}
    print(json.dumps(result))
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
