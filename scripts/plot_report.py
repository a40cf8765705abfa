#!/usr/bin/env python3
"""Draw a PNG chart from a feedflow JSON report.

Usage:
  .venv/bin/python scripts/plot_report.py REPORT.json OUT.png

The report's top-level "kind" picks the chart:

  "eval"   {"kind":"eval","log":"...","positives":2000,
            "systems":{"engine":{"hr@10":..,"hr@50":..,"ndcg@10":..,"coverage":..,
                                 "creator_diversity":..,"new_share":..},
                       "popularity":{...},"oracle":{...}}}        (oracle optional)
           -> grouped bars: one group per metric, one bar per system, values on the bars.

  "bench"  {"kind":"bench","machine":"...","figures":[{"name":"replay 1 worker",
            "value":145000,"unit":"events/s","target":..,"reference":..}, ...]}
           -> one horizontal bar per figure, value / target (or / reference when there is
              no target), raw value and unit next to each bar, a vertical "target" line at
              1.0. A figure may say "better":"lower" (e.g. latencies; guessed from time
              and size units when absent): its bar is then green when value <= target.
              A figure with "role":"context" (measured for comparison) is drawn paler.
              Figures with neither target nor reference get no bar, only their value.

Exit status 2 with a message for an unreadable or malformed report.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRIC_ORDER = ["hr@10", "hr@50", "ndcg@10", "coverage", "creator_diversity", "new_share"]
SYSTEM_ORDER = ["engine", "popularity", "oracle"]
SYSTEM_COLORS = {"engine": "#1f77b4", "popularity": "#ff7f0e", "oracle": "#2ca02c"}
LOWER_IS_BETTER_UNITS = {"ns", "us", "µs", "ms", "s", "sec", "seconds", "min", "b", "kb", "mb",
                         "gb", "kib", "mib", "gib", "bytes"}


class ReportError(Exception):
    """Unusable report: reported as one line, exit status 2."""


def number(value):
    """A finite float, or None for anything else (missing, null, NaN, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def ordered(keys, preferred):
    keys = list(keys)
    return [k for k in preferred if k in keys] + [k for k in keys if k not in preferred]


def human(value):
    if value != 0 and (abs(value) >= 1e9 or abs(value) < 1e-3):
        return f"{value:.3g}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"


def plot_eval(report):
    systems = report.get("systems")
    if not isinstance(systems, dict) or not systems:
        raise ReportError('eval report has no "systems" object')
    names = ordered(systems, SYSTEM_ORDER)
    for name in names:
        if not isinstance(systems[name], dict):
            raise ReportError(f'system "{name}" is not an object of metrics')
    metrics = ordered(dict.fromkeys(m for n in names for m in systems[n]), METRIC_ORDER)
    metrics = [m for m in metrics if any(number(systems[n].get(m)) is not None for n in names)]
    if not metrics:
        raise ReportError("eval report has no numeric metrics")

    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(metrics) * max(1, len(names) / 3)), 4.8))
    palette = plt.get_cmap("tab10")
    top = 0.0
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, metric in enumerate(metrics):
            value = number(systems[name].get(metric))
            if value is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(value)
        color = SYSTEM_COLORS.get(name, palette(i % 10))
        bars = ax.bar(xs, ys, width * 0.92, label=name, color=color)
        ax.bar_label(bars, labels=[f"{y:.3f}" for y in ys], fontsize=7, rotation=90, padding=2)
        top = max([top] + ys)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(min(0.0, *(number(systems[n].get(m)) or 0.0 for n in names for m in metrics)),
                (top if top > 0 else 1.0) * 1.18)
    ax.set_ylabel("value")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncols=len(names))
    positives = report.get("positives")
    title = f"evaluation of {report.get('log') or 'log'}"
    if number(positives) is not None:
        title += f" ({human(positives)} positives)"
    ax.set_title(title)
    return fig


def lower_is_better(figure):
    better = str(figure.get("better", "")).lower()
    if better in ("lower", "higher"):
        return better == "lower"
    return str(figure.get("unit", "")).strip().lower() in LOWER_IS_BETTER_UNITS


def plot_bench(report):
    figures = report.get("figures")
    if not isinstance(figures, list) or not figures:
        raise ReportError('bench report has no "figures" list')
    rows = []
    for k, fig in enumerate(figures):
        if not isinstance(fig, dict) or number(fig.get("value")) is None:
            raise ReportError(f"figure {k + 1} needs a numeric \"value\"")
        value, target, reference = (number(fig.get(key)) for key in ("value", "target", "reference"))
        base, base_name = (target, "target") if target else (reference, "reference") if reference else (None, "")
        ratio = value / base if base else None
        text = f"{human(value)} {fig.get('unit', '')}".rstrip()
        if base:
            text += f"  ({ratio:.3g}× {base_name} {human(base)})"
        else:
            text += "  (no target)"
        if ratio is None:
            color = "#bbbbbb"
        elif base_name == "reference":
            color = "#1f77b4"
        else:
            ok = ratio <= 1.0 if lower_is_better(fig) else ratio >= 1.0
            # A figure measured for comparison (a setting the engine does not use): paler shades.
            context = fig.get("role") == "context"
            color = ("#98df8a" if context else "#2ca02c") if ok else ("#ff9896" if context else "#d62728")
        rows.append((str(fig.get("name", f"figure {k + 1}")), ratio, text, color))

    ratios = [r for _, r, _, _ in rows if r is not None]
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.5 * len(rows)))
    ys = list(range(len(rows)))[::-1]  # first figure on top
    log_scale = bool(ratios) and min(ratios) > 0 and max(ratios + [1.0]) / min(ratios + [1.0]) > 50
    for y, (_, ratio, text, color) in zip(ys, rows):
        if ratio is not None:
            ax.barh(y, ratio, height=0.6, color=color)
    right = max(ratios + [1.0]) * (3.0 if log_scale else 1.0)
    if log_scale:
        ax.set_xscale("log")
        ax.set_xlim(min(ratios + [1.0]) / 2, right * 20)
    else:
        ax.set_xlim(min(ratios + [0.0]) * 1.1, right * 1.6)
    for y, (_, ratio, text, _) in zip(ys, rows):
        x = ratio if ratio is not None and ratio > 0 else ax.get_xlim()[0]
        ax.annotate(text, (x, y), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.text(1.0, 1.0, "target", transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8)
    ax.set_yticks(ys, [name for name, _, _, _ in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("value / target (or reference)" + ("  [log scale]" if log_scale else ""))
    ax.grid(axis="x", alpha=0.3)
    machine = report.get("machine")
    ax.set_title("benchmarks" + (f" on {machine}" if machine else ""), pad=16)
    return fig


def main(argv):
    if len(argv) != 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    src, out = argv
    try:
        with open(src, encoding="utf-8") as fh:
            report = json.load(fh)
    except OSError as err:
        raise ReportError(f"cannot read {src}: {err.strerror}") from None
    except ValueError as err:
        raise ReportError(f"{src} is not valid JSON: {err}") from None
    if not isinstance(report, dict):
        raise ReportError(f"{src}: the report must be a JSON object")
    kind = report.get("kind")
    if kind == "eval":
        fig = plot_eval(report)
    elif kind == "bench":
        fig = plot_bench(report)
    else:
        raise ReportError(f'{src}: unknown report kind {kind!r} (expected "eval" or "bench")')
    fig.tight_layout()
    try:
        # fixed metadata keeps the PNG bytes stable across runs
        fig.savefig(out, dpi=120, metadata={"Software": None})
    except OSError as err:
        raise ReportError(f"cannot write {out}: {err.strerror}") from None
    finally:
        plt.close(fig)
    print(f"wrote {out} ({kind} chart)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ReportError as err:
        print(f"plot_report: error: {err}", file=sys.stderr)
        sys.exit(2)
