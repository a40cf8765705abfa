"""A client outside the project: produces a recorded feedflow log into the input topics with confluent-kafka.

Routes as `feedflow replay --to kafka` documents (uploads and moderation to the
uploads topic keyed by post_id, engagements and requests keyed by user_id) and
sends in log order, so each partition stays ordered by event time. `--rate 0`
sends as fast as the client can; `--rate N` paces it at N messages a second.
`--now-speed S` plays a service on the wall clock instead: each event's `ts` is
moved to now (the first event at the start, the rest S times faster than the
log's own time) and the event is sent when that time comes; the log as sent is
written to `--rebased-log`. Prints what it sent as JSON.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Producer

TOPIC_OF = {"upload": "uploads", "moderation": "uploads", "engagement": "engagements", "request": "requests"}
KEY_OF = {"uploads": "post_id", "engagements": "user_id", "requests": "user_id"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", required=True)
    for role in ("uploads", "engagements", "requests"):
        ap.add_argument(f"--{role}", default=role, help=f"the {role} topic (default {role})")
    ap.add_argument("--log", required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    ap.add_argument("--now-speed", type=float, default=0.0,
                    help="stamp ts with the wall clock, the log's time running this many times faster (0: off)")
    ap.add_argument("--rebased-log", help="with --now-speed: where to write the log as sent")
    args = ap.parse_args()
    if args.now_speed > 0 and not args.rebased_log:
        ap.error("--now-speed needs --rebased-log")
    rebased = open(args.rebased_log, "wb") if args.now_speed > 0 else None
    first_ts, wall_start_ms = None, time.time() * 1000.0
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    failures = []

    def delivered(err, _message):
        if err is not None:
            failures.append(str(err))

    sent, started = {}, time.monotonic()
    with open(args.log, "rb") as log:
        for n, line in enumerate(log):
            line = line.rstrip(b"\n")
            event = json.loads(line)
            role = TOPIC_OF.get(event.get("type"), "uploads")
            key = event.get(KEY_OF[role])
            if args.rate > 0:
                delay = started + n / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if rebased is not None:
                first_ts = event["ts"] if first_ts is None else first_ts
                event["ts"] = int(wall_start_ms + (event["ts"] - first_ts) / args.now_speed)
                delay = event["ts"] / 1000.0 - time.time()
                if delay > 0:
                    time.sleep(delay)
                line = json.dumps(event, separators=(",", ":")).encode()
                rebased.write(line + b"\n")
            while True:
                try:
                    producer.produce(getattr(args, role), value=line, key=None if key is None else str(key),
                                     on_delivery=delivered)
                    break
                except BufferError:  # the client's queue is full: let it drain
                    producer.poll(0.05)
            producer.poll(0)
            sent[role] = sent.get(role, 0) + 1
    if rebased is not None:
        rebased.close()
    left = producer.flush(60)
    if left or failures:
        print(f"produce_log: {left} messages undelivered, {len(failures)} failed: {failures[:3]}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
