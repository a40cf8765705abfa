"""A client outside the project: reads feedflow's output topics with confluent-kafka.

Assigns every partition explicitly (no consumer group), reads each topic from
its start to its end, and prints per topic: messages, valid responses (JSON
with request_id and items), and messages keyed by their user_id. With --dump DIR,
also writes each topic's values to DIR/<topic>.jsonl, one per line.
"""
import argparse
import json
import os
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def read_topic(brokers, topic, timeout_s, values=None):
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": "feedflow-python-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    metadata = consumer.list_topics(topic, timeout=timeout_s)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise SystemExit(f"topic {topic} does not exist")
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    at_end, stats = set(), {"messages": 0, "valid_responses": 0, "keyed_by_user": 0}
    idle_polls = 0
    while len(at_end) < len(partitions):
        message = consumer.poll(1.0)
        if message is None:
            idle_polls += 1
            if idle_polls > timeout_s:
                raise SystemExit(f"{topic}: no end of partition after {timeout_s} s")
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
                continue
            raise SystemExit(f"{topic}: {message.error()}")
        at_end.discard(message.partition())
        stats["messages"] += 1
        if values is not None:
            values.append(message.value().decode())
        value = json.loads(message.value())
        if "request_id" in value and isinstance(value.get("items"), list):
            stats["valid_responses"] += 1
        key = message.key()
        if key is not None and "user_id" in value and key.decode() == str(value["user_id"]):
            stats["keyed_by_user"] += 1
    consumer.close()
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--dump", help="directory for each topic's values, <topic>.jsonl")
    args = parser.parse_args()
    stats = {}
    for topic in args.topic:
        values = [] if args.dump else None
        stats[topic] = read_topic(args.brokers, topic, args.timeout, values)
        if args.dump:
            with open(os.path.join(args.dump, f"{topic}.jsonl"), "w") as out:
                out.writelines(v + "\n" for v in values)
    json.dump(stats, sys.stdout)


if __name__ == "__main__":
    main()
