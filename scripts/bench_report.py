#!/usr/bin/env python3
"""Collects the benchmark results into one report: every figure with its target or its same-run reference.

Usage:
  python3 scripts/bench_report.py RESULTS_DIR REPORT.json [MARKDOWN]

Reads the `*.json` files `scripts/bench` writes in RESULTS_DIR (a missing one is skipped and named),
writes REPORT.json in the "bench" format of `scripts/plot_report.py` (one figure per line of the
table: value, unit, target or reference, which direction is better, whether the target is met) and
prints the table as Markdown. With MARKDOWN (BENCHMARKS.md), the table and the list of targets
replace what stands between its `<!-- results:begin -->`/`<!-- results:end -->` and
`<!-- targets:begin -->`/`<!-- targets:end -->` markers, so the document always shows the results present.
"""
import json
import os
import platform
import re
import sys


def load(results, name):
    path = os.path.join(results, f"{name}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def figure(figures, name, value, unit, *, target=None, reference=None, reference_name=None, better="higher",
           source="", role="engine"):
    """One line of the report. `role` "context" marks a figure measured for comparison (a setting the
    engine does not use); its target is shown but it is not counted as a target met or missed."""
    if value is None:
        return
    met = None
    if target is not None:
        met = value <= target if better == "lower" else value >= target
    figures.append({"name": name, "value": value, "unit": unit, "target": target, "reference": reference,
                    "reference_name": reference_name, "better": better, "met": met, "source": source,
                    "role": role})


def replay_figures(figs, r):
    try:
        log_mb = os.path.getsize(r["log"]) / 2**20
    except OSError:
        log_mb = None
    for w, row in sorted(r["workers"].items()):
        figure(figs, f"replay ingest, {w} worker(s)", row["median_events_per_s"], "events/s", target=300_000,
               source="replay")
        figure(figs, f"replay peak memory, {w} worker(s)", row["peak_rss_mb"], "MB", reference=log_mb,
               reference_name="size of the log replayed", better="lower", source="replay")


def serving_figures(figs, r):
    targets = r.get("targets_ms", {})
    for w, row in sorted(r["workers"].items()):
        figure(figs, f"request service P50, {w} worker(s)", row["median_p50_ms"], "ms", target=targets.get("p50"),
               better="lower", source="serving")
        figure(figs, f"request service P99, {w} worker(s)", row["median_p99_ms"], "ms", target=targets.get("p99"),
               better="lower", source="serving")


ENGINE_SHARDS = 4  # `[index] shards`, the default of connectors/src/config.rs


def index_figures(figs, r):
    """The engine's layout is judged against the targets; one index, one thread, other shard counts and
    usearch's defaults are there for comparison ("context"), except the best configuration found for a
    size the default layout misses (a setting a user can choose, so it is judged too)."""
    targets = r.get("targets", {})
    want_recall = targets.get("recall_at_100", 0)
    for i, size in enumerate(r["sizes"]):
        n = f"{size['n'] // 1000}k" if size["n"] < 1_000_000 else f"{size['n'] // 1_000_000}M"
        k, shards = size["k"], size["shards"]
        same_n = [s for s in r["sizes"] if s["n"] == size["n"]]
        # Every (shards, expansion_search) measured for this size, with its recall: the best one is judged.
        options = [(s["recall_at_k_sharded"], s["shards"], None) for s in same_n]
        options += [(w["recall_at_k_sharded"], s["shards"], w["expansion_search"]) for s in same_n
                    for w in s.get("expansion_search_sweep", [])[:1]]
        best = max(options)
        default_layout = shards == ENGINE_SHARDS
        judged_layout = default_layout or (best[1] == shards and best[0] >= want_recall)
        # A run with another shard count repeats the one-index figures: show them once per size.
        if i == 0 or size["n"] != r["sizes"][i - 1]["n"]:
            figure(figs, f"index inserts, {n} posts, one index, 1 thread", size["inserts_per_s_1_thread"],
                   "vectors/s", target=targets.get("inserts_per_s"), source="index", role="context")
            figure(figs, f"recall@{k}, {n} posts, one index", size["recall_at_k"], "", target=want_recall,
                   source="index", role="context")
        figure(figs, f"index inserts, {n} posts, {shards} shards, 1 thread", size.get("inserts_per_s_sharded_1_thread"),
               "vectors/s", target=targets.get("inserts_per_s"), source="index", role="context")
        figure(figs, f"index inserts, {n} posts, {shards} shards, 2 threads",
               size.get("inserts_per_s_sharded_2_threads"), "vectors/s", target=targets.get("inserts_per_s"),
               source="index", role="engine" if judged_layout else "context")
        judged = default_layout or best == (size["recall_at_k_sharded"], shards, None)
        figure(figs, f"recall@{k}, {n} posts, {shards} shards merged", size["recall_at_k_sharded"], "",
               target=want_recall, source="index", role="engine" if judged else "context")
        figure(figs, f"ANN search, {n} posts, {shards} shards merged", size["ann_sharded_ms"], "ms",
               reference=size["exact_scan_ms"], reference_name="exact scan, same data", better="lower",
               source="index")
        for wider in size.get("expansion_search_sweep", [])[:1]:
            if size["recall_at_k_sharded"] < want_recall:
                es = wider["expansion_search"]
                judged = best == (wider["recall_at_k_sharded"], shards, es) and best[0] >= want_recall
                figure(figs, f"recall@{k}, {n} posts, {shards} shards, expansion_search {es}",
                       wider["recall_at_k_sharded"], "", target=want_recall, source="index",
                       role="engine" if judged else "context")
                figure(figs, f"ANN search, {n} posts, {shards} shards, expansion_search {es}",
                       wider["ann_sharded_ms"], "ms", reference=size["exact_scan_ms"],
                       reference_name="exact scan, same data", better="lower", source="index")
        defaults = size.get("usearch_defaults")
        if defaults:
            figure(figs, f"index inserts, {n} posts, usearch defaults, 1 thread", defaults["inserts_per_s_1_thread"],
                   "vectors/s", target=targets.get("inserts_per_s"), source="index", role="context")
            figure(figs, f"recall@{k}, {n} posts, usearch defaults", defaults["recall_at_k"], "",
                   target=want_recall, source="index", role="context")


def ranking_figures(figs, r):
    for row in r.get("sizes", []):
        figure(figs, f"ONNX scoring, batch of {row['n']}", row["gflops"], "GFLOP/s",
               reference=row["gflops"] / row["batching_speedup"], reference_name="one row per call, same run",
               source="ranking")


def freshness_figures(figs, r):
    tick = r["tick_ms"]
    up = r["upload_to_searchable_ms"]
    figure(figs, "upload -> searchable, median (event time)", up["p50"], "ms", target=tick, better="lower",
           source="freshness")
    figure(figs, "upload -> searchable, max (event time)", up["max"], "ms", target=tick, better="lower",
           source="freshness")
    tr = r["burst_to_trending_ms"]
    figure(figs, "burst crossing -> trending, max (event time)", tr["max"], "ms", target=tick, better="lower",
           source="freshness")


def quality_figures(figs, r):
    # Targets of issue 16: out of the box HR@10 >= 1.5x the better popularity baseline (real log) and
    # >= 0.9x the oracle (generated worlds); trained on the log's first 80 %: >= 1.1x item-kNN.
    for name, entry in r.get("logs", {}).items():
        for variant, run in entry.items():
            s = run["systems"]
            engine = s["engine"]["hr@10"]
            label = f"HR@10 {name}, {'default model' if variant == 'default' else 'trained on its first 80 %'}"
            best_pop = max(s["popularity"]["hr@10"], s["popularity_7d"]["hr@10"])
            if "oracle" in s:
                figure(figs, label + " vs oracle", engine, "", reference=s["oracle"]["hr@10"],
                       reference_name="oracle (true probabilities)", source="quality")
                figure(figs, label + " / oracle", engine / max(s["oracle"]["hr@10"], 1e-12), "x",
                       target=0.9 if variant == "default" else None, source="quality")
            else:
                figure(figs, label + " / popularity", engine / max(best_pop, 1e-12), "x",
                       target=1.5 if variant == "default" else None, source="quality")
            figure(figs, label + " / item-kNN", engine / max(s["item_knn"]["hr@10"], 1e-12), "x",
                   target=1.1 if variant == "trained" and "oracle" not in s else None, source="quality")


def reference_figures(figs, r):
    for w, row in sorted(r["workers"].items()):
        figure(figs, f"sliding-window counts, {w} worker(s)", row["feedflow_engagements_per_s"], "engagements/s",
               reference=row["reference_engagements_per_s"], reference_name="Bytewax, same log and run",
               source="reference")


def live_figures(figs, r):
    latency = r["latency"]["latency_ms"]
    rate = r["latency"].get("request_rate")
    label = f"live end-to-end P99 at {rate:g} req/s" if rate else "live end-to-end P99"
    p99 = latency.get("p99")
    if p99 is None:
        # No response reached the load generator while it waited: the engine's own P99 (arrival at
        # its consumer -> delivered), from its summary, is a lower bound of the end-to-end one.
        import re
        found = [re.search(r"arrival → delivered\) P50 [\d.]+ ms, P99 ([\d.]+) ms", l) for l in r.get("engine_summary", [])]
        p99 = next((float(m[1]) for m in found if m), None)
        label += " (engine side, a lower bound: no response arrived in time)"
    if p99 is not None:
        figure(figs, label, p99, "ms", target=r.get("targets", {}).get("p99_ms"), better="lower", source="live")
    ingest = r["ingest"]
    if "file_mode_events_per_s" in ingest:
        # The target is against file mode on the same events with the same config (10 ms ticks).
        figure(figs, "catch-up from Kafka", ingest["engine_events_per_s"], "events/s",
               reference=ingest["file_mode_events_per_s"]["tick_10_ms"],
               reference_name="file mode, same events, config and run", source="live")
    figure(figs, "ingest from Kafka", ingest["engine_events_per_s"], "events/s",
           reference=ingest["plain_consumer_messages_per_s"], reference_name="plain consumer, same run",
           source="live")


def live_context_figures(figs, r):
    """The live latency at a lower request rate (`BENCH_LIVE_REQUESTS=100 scripts/bench live`), for comparison."""
    latency = r["latency"]["latency_ms"]
    rate = r["latency"].get("request_rate")
    figure(figs, f"live end-to-end P99 at {rate:g} req/s", latency["p99"], "ms",
           target=r.get("targets", {}).get("p99_ms"), better="lower", source="live", role="context")


SECTIONS = [("replay", replay_figures), ("serving", serving_figures), ("index", index_figures),
            ("ranking", ranking_figures), ("freshness", freshness_figures), ("quality", quality_figures),
            ("reference", reference_figures), ("live-r200", live_figures), ("live-r100", live_context_figures)]


def human(value):
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def baseline(fig):
    unit = f" {fig['unit']}" if fig["unit"] else ""
    if fig["target"] is not None:
        return f"target {human(fig['target'])}{unit}", fig["target"]
    if fig["reference"] is not None:
        return f"{fig['reference_name']}: {human(fig['reference'])}{unit}", fig["reference"]
    return "", None


def results_table(figs):
    lines = ["| figure | value | target or reference | ratio | target met |", "|---|---|---|---|---|"]
    for fig in figs:
        unit = f" {fig['unit']}" if fig["unit"] else ""
        base, base_value = baseline(fig)
        ratio = f"{fig['value'] / base_value:.2f}" if base_value else ""
        met = {True: "yes", False: "**no**", None: ""}[fig["met"]]
        if fig["role"] == "context" and fig["met"] is not None:
            met = f"({met.strip('*')}, for comparison)"
        lines.append(f"| {fig['name']} | {human(fig['value'])}{unit} | {base} | {ratio} | {met} |")
    return lines


def targets_list(figs):
    lines = []
    for verdict, label in ((True, "Met"), (False, "Not met")):
        chosen = [f for f in figs if f["met"] is verdict and f["role"] != "context"]
        lines.append(f"**{label}** ({len(chosen)}):")
        lines.append("")
        for fig in chosen:
            unit = f" {fig['unit']}" if fig["unit"] else ""
            lines.append(f"- {fig['name']}: {human(fig['value'])}{unit} ({baseline(fig)[0]})")
        lines.append("")
    return lines[:-1]


def update_markdown(path, blocks):
    with open(path) as f:
        text = f.read()
    for name, lines in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"bench_report: {path} has no <!-- {name}:begin --> ... <!-- {name}:end --> markers")
        text = pattern.sub(lambda m: m[1] + "\n".join(lines) + "\n" + m[2], text)
    with open(path, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    results, out = sys.argv[1], sys.argv[2]
    figs, missing = [], []
    for name, build in SECTIONS:
        data = load(results, name)
        if data is None:
            missing.append(name)
            continue
        try:
            build(figs, data)
        except (KeyError, TypeError, ZeroDivisionError) as err:
            print(f"bench_report: {name}.json lacks what the report needs ({err!r}); skipped", file=sys.stderr)
            missing.append(name)
    report = {"kind": "bench", "machine": f"{os.cpu_count()} vCPUs, {platform.machine()}", "figures": figs,
              "missing": missing}
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    table = results_table(figs)
    print("\n".join(table))
    if len(sys.argv) == 4:
        update_markdown(sys.argv[3], {"results": table, "targets": targets_list(figs)})
        print(f"bench_report: updated the results and targets of {sys.argv[3]}", file=sys.stderr)
    if missing:
        print(f"\n(no results for: {', '.join(missing)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
