#!/usr/bin/env python3
"""Reads Vigil's alert topic as any consumer can, with no Vigil code: vigild --alerts-format json writes each
alert as one JSON object (the proto3 JSON mapping of vigil.v1.Alert). Prints one line per alert transition.

    pip install confluent-kafka==2.6.1
    read_alerts.py --brokers 127.0.0.1:9092 --topic vigil.alerts [--from-beginning] [--idle-seconds 5]

read_committed: only alerts of committed transactions, each exactly once. A consumer group of its own
(--group) keeps its place between runs; without one it reads and exits after --idle-seconds of quiet.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="vigil.alerts")
    ap.add_argument("--group", default=None, help="a consumer group, to resume where it left off")
    ap.add_argument("--from-beginning", action="store_true")
    ap.add_argument("--idle-seconds", type=float, default=5.0, help="exit after this long with nothing new")
    args = ap.parse_args()
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group or f"read-alerts-{time.time_ns()}",
        "enable.auto.commit": args.group is not None,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
    })
    consumer.subscribe([args.topic])
    last = time.monotonic()
    try:
        while time.monotonic() - last < args.idle_seconds:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            last = time.monotonic()
            alert = json.loads(msg.value())
            print(f'{alert["at"]}  {alert["state"]:<12} {alert["level"]:<14} {alert["rule"]:<26} '
                  f'victim {alert["victim_id"]}: {alert.get("reason", "")}  [alert {alert["alert_id"]}]')
            sys.stdout.flush()
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
