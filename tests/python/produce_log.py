"""A client outside the project: produces a recorded feedflow log into the input topics with confluent-kafka.

Routes as `feedflow replay --to kafka` documents (uploads and moderation to the
uploads topic keyed by post_id, engagements and requests keyed by user_id) and
sends in log order, so each partition stays ordered by event time. `--rate 0`
sends as fast as the client can; `--rate N` paces it at N messages a second.
Prints what it sent as JSON.
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
    args = ap.parse_args()
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
            while True:
                try:
                    producer.produce(getattr(args, role), value=line, key=None if key is None else str(key),
                                     on_delivery=delivered)
                    break
                except BufferError:  # the client's queue is full: let it drain
                    producer.poll(0.05)
            producer.poll(0)
            sent[role] = sent.get(role, 0) + 1
    left = producer.flush(60)
    if left or failures:
        print(f"produce_log: {left} messages undelivered, {len(failures)} failed: {failures[:3]}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
