"""bench/peers/brokers/count.py - the consumer side of bench/brokers.sh's passes: counts what
hookd delivered through a broker, with tests/integration/peers_brokers.py's clients.

  count.py nats-sub PORT SUBJECT N DEADLINE_S    subscribes, prints READY, then waits for N
                                                 messages (core NATS)
  count.py nats-stream PORT NAME SUBJECTS        creates a JetStream stream (file storage)
  count.py nats-wait PORT NAME N DEADLINE_S      waits until stream NAME holds N messages
  count.py redis-wait PORT STREAM N DEADLINE_S   waits until the Redis stream holds N entries
  count.py mqtt-sub PORT TOPIC N DEADLINE_S      subscribes (QoS 1), prints READY, then waits
                                                 for N messages

The wait modes print one line: count=C last_ns=T (T: CLOCK_REALTIME ns of the last arrival:
the subscriber's receipt, the stream's last_ts, or the last Redis entry id's milliseconds).
"""

import os
import sys
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "integration"))
import peers_brokers as pb  # noqa: E402


def rfc3339_ns(s):
    """"2026-12-02T06:40:01.123456789Z" -> ns since the epoch."""
    base, _, frac = s.rstrip("Z").partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "nats-sub":
        subject, n, deadline = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        c = pb.NatsClient(port)
        sid = c.subscribe(subject)
        print("READY", flush=True)
        end = time.monotonic() + deadline
        while time.monotonic() < end and len(c.messages(sid)) < n:
            time.sleep(0.05)
        got = c.messages(sid)
        print(f"count={len(got)} last_ns={got[-1].t_ns if got else 0}", flush=True)
    elif mode == "nats-stream":
        c = pb.NatsClient(port)
        c.stream_create(sys.argv[3], sys.argv[4].split(","))
    elif mode == "nats-wait":
        name, n, deadline = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        c = pb.NatsClient(port)
        end = time.monotonic() + deadline
        while True:
            st = c.js(f"STREAM.INFO.{name}")["state"]
            if st["messages"] >= n or time.monotonic() >= end:
                break
            time.sleep(0.05)
        print(f"count={st['messages']} last_ns={rfc3339_ns(st['last_ts']) if st['messages'] else 0}")
    elif mode == "redis-wait":
        stream, n, deadline = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        c = pb.RedisClient(port)
        end = time.monotonic() + deadline
        while True:
            count = c.call("XLEN", stream)
            if count >= n or time.monotonic() >= end:
                break
            time.sleep(0.05)
        last = c.call("XREVRANGE", stream, "+", "-", "COUNT", "1")
        last_ns = int(last[0][0].split(b"-")[0]) * 1_000_000 if last else 0
        print(f"count={count} last_ns={last_ns}")
    elif mode == "mqtt-sub":
        topic, n, deadline = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        c = pb.MqttSubscriber(port, topic)
        print("READY", flush=True)
        end = time.monotonic() + deadline
        while time.monotonic() < end and len(c.messages()) < n:
            time.sleep(0.05)
        got = c.messages()
        print(f"count={len(got)} last_ns={got[-1].t_ns if got else 0}", flush=True)
    else:
        sys.exit(f"count.py: unknown mode {mode}")


if __name__ == "__main__":
    main()
