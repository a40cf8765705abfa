#!/usr/bin/env python3
"""Sliding-window counts side by side: feedflow's operators against Bytewax, on the same log, in the same run.

Usage (from the repository root; `scripts/bench reference` builds the example and installs Bytewax):
  .venv/bin/python scripts/bench_reference.py LOG RESULT.json [--window-ms 300000] [--hop-ms 60000]
      [--runs 3] [--reference-runs 1] [--out bench/out-reference]

For 1 and 2 workers it runs `target/release/examples/window_counts` (`--runs` times, median) and
`scripts/reference_window.py` under `bytewax.run` (`--reference-runs` times; 2 workers are 2
processes, as Bytewax workers in one process share the GIL), timing each process from start to
exit, then checks that both computed the same counts (`scripts/compare_windows.py`). The result is
written to RESULT.json; a difference between the two engines fails the benchmark.
"""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

ENGINE = "target/release/examples/window_counts"
PYTHON = ".venv/bin/python"


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def timed(commands, env=None):
    """Wall time of processes started together, until the last exits; fails on a non-zero exit."""
    started = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [p.communicate() for p in procs]
    seconds = time.perf_counter() - started
    for command, proc, (out, err) in zip(commands, procs, outputs):
        if proc.returncode != 0:
            sys.exit(f"bench_reference: {' '.join(command)} failed ({proc.returncode}):\n{err[-2000:]}")
    return seconds, [o for o, _ in outputs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("result")
    ap.add_argument("--window-ms", type=int, default=300_000)
    ap.add_argument("--hop-ms", type=int, default=60_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--reference-runs", type=int, default=1)
    ap.add_argument("--out", default="bench/out-reference")
    args = ap.parse_args()
    if args.window_ms % args.hop_ms:
        sys.exit("bench_reference: --window-ms must be a multiple of --hop-ms")
    os.makedirs(args.out, exist_ok=True)
    result = {
        "benchmark": "reference",
        "computation": "per-post engagement counts in sliding windows",
        "log": args.log,
        "window_ms": args.window_ms,
        "hop_ms": args.hop_ms,
        "windows_per_event": args.window_ms // args.hop_ms,
        "reference_engine": "Bytewax 0.21.1 (SlidingWindower + count_window, EventClock)",
        "machine": {"cpus": os.cpu_count(), "system": platform.platform()},
        "workers": {},
    }
    for workers in (1, 2):
        engine_dir = f"{args.out}/engine-w{workers}"
        engine_times, engine_report = [], None
        for _ in range(args.runs):
            seconds, (out,) = timed([[ENGINE, "--log", args.log, "--out", engine_dir, "--workers", str(workers),
                                      "--window-ms", str(args.window_ms), "--hop-ms", str(args.hop_ms)]])
            engine_times.append(seconds)
            engine_report = json.loads(out.strip().splitlines()[-1])
            print(f"feedflow  {workers} worker(s): {seconds:.2f} s", flush=True)
        ref_file = f"{args.out}/bytewax-w{workers}.txt"
        env = dict(os.environ, REF_LOG=args.log, REF_OUT=ref_file, REF_WINDOW_MS=str(args.window_ms),
                   REF_HOP_MS=str(args.hop_ms))
        flow = ["-m", "bytewax.run", "scripts/reference_window.py:flow", "-w", "1"]
        if workers == 1:
            commands = [[PYTHON, *flow]]
        else:
            addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(workers))
            commands = [[PYTHON, *flow, "-i", str(i), "-a", addresses] for i in range(workers)]
        ref_times = []
        for _ in range(args.reference_runs):
            for stale in (ref_file, ref_file + ".late"):
                if os.path.exists(stale):
                    os.remove(stale)
            seconds, _ = timed(commands, env)
            ref_times.append(seconds)
            print(f"Bytewax   {workers} worker(s): {seconds:.2f} s", flush=True)
        late = sum(1 for _ in open(ref_file + ".late")) if os.path.exists(ref_file + ".late") else 0
        compared = subprocess.run([sys.executable, "scripts/compare_windows.py", engine_dir, ref_file,
                                   str(args.window_ms), str(args.hop_ms)], capture_output=True, text=True)
        if compared.returncode not in (0, 1):
            sys.exit(f"bench_reference: comparison failed: {compared.stderr}")
        comparison = json.loads(compared.stdout)
        engine_s, ref_s = statistics.median(engine_times), statistics.median(ref_times)
        engagements = engine_report["engagements"]
        result["workers"][str(workers)] = {
            "engagements": engagements,
            "invalid_lines_engine": engine_report["invalid"],
            "late_windows_reference": late,
            "feedflow_seconds": engine_s,
            "feedflow_runs": len(engine_times),
            "feedflow_engagements_per_s": engagements / engine_s,
            "reference_seconds": ref_s,
            "reference_runs": len(ref_times),
            "reference_engagements_per_s": engagements / ref_s,
            "speedup_feedflow_over_reference": ref_s / engine_s,
            "outputs_equal": comparison["equal"],
            "comparison": comparison,
        }
        print(f"{workers} worker(s): feedflow {engine_s:.2f} s, Bytewax {ref_s:.2f} s, ratio {ref_s / engine_s:.1f}x, "
              f"outputs equal: {comparison['equal']}", flush=True)
    with open(args.result, "w") as f:
        json.dump(result, f, indent=2)
    if not all(w["outputs_equal"] for w in result["workers"].values()):
        sys.exit("bench_reference: feedflow and Bytewax computed different counts (see " + args.result + ")")


if __name__ == "__main__":
    main()
