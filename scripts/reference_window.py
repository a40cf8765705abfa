"""The reference engine of `scripts/bench reference`: sliding-window engagement counts per post in Bytewax.

Run as a Bytewax dataflow (the settings come from the environment, as `bytewax.run` takes no
arguments of its own for the flow):

  REF_LOG=LOG.jsonl REF_OUT=FILE REF_WINDOW_MS=300000 REF_HOP_MS=60000 \
      .venv/bin/python -m bytewax.run scripts/reference_window.py:flow -w 1

It computes what `dataflows/examples/window_counts.rs` computes: for every post and every window
`[i·hop, i·hop + window)` (aligned to the Unix epoch) holding at least one engagement, the number of
engagements in it, with Bytewax's own event-time clock and sliding windower. Each output line is
`post window_id count`. Lines that are not JSON objects or lack the fields are skipped, like the
engine's invalid lines (the benchmark's logs are clean: both sides report what they skipped).
"""

import json
import os
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.connectors.files import FileSink, FileSource
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import EventClock, SlidingWindower, count_window

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def engagement(line):
    """(post_id, event time) of an engagement line, None for anything else."""
    try:
        event = json.loads(line)
        if event.get("type") != "engagement":
            return None
        return str(event["post_id"]), EPOCH + timedelta(milliseconds=event["ts"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def build():
    log, out = os.environ["REF_LOG"], os.environ["REF_OUT"]
    window = timedelta(milliseconds=int(os.environ.get("REF_WINDOW_MS", "300000")))
    hop = timedelta(milliseconds=int(os.environ.get("REF_HOP_MS", "60000")))
    flow = Dataflow("reference_window")
    lines = op.input("log", flow, FileSource(log))
    engagements = op.filter_map("engagements", lines, engagement)
    # Bytewax's watermark also advances with wall-clock time between items; the log is in event-time
    # order, so a wait far above any pause in the replay keeps every item on time (late ones are counted).
    clock = EventClock(lambda e: e[1], wait_for_system_duration=timedelta(seconds=60))
    windower = SlidingWindower(length=window, offset=hop, align_to=EPOCH)
    counts = count_window("count", engagements, clock, windower, key=lambda e: e[0])
    rendered = op.map("render", counts.down, lambda kv: (kv[0], f"{kv[0]} {kv[1][0]} {kv[1][1]}"))
    op.output("out", rendered, FileSink(out))
    late = op.map("render_late", counts.late, lambda kv: ("late", f"{kv[0]} {kv[1][0]}"))
    op.output("late", late, FileSink(out + ".late"))
    return flow


flow = build()
