#!/usr/bin/python3
"""A rill publisher in another language, written from proto/publisher_v1.md alone.

It holds an in-memory outbox for two sensors, publishes their readings over XPUB (reading_v1),
drops some frames on purpose, heartbeats, and answers replay_v1 requests on a ROUTER socket
(rpc_v1), so that a real store-sub has to repair every hole through it:

- py-a: seqs 1..20 in frames of two; the frames of 7..10 are never sent (a gap in the middle,
  noticed when 11 arrives);
- py-b: seqs 1..2 are published before any subscriber is there and then dropped from the
  outbox (a replay answers them as `lost`); 3..12 go out one per frame; 13..15 are assigned
  and never sent (a tail gap, announced only by the heartbeats' `newest`).

Prints "stream ENDPOINT" and "replay ENDPOINT" once bound, then runs until SIGTERM or SIGINT
(or --max-seconds), and prints what it served:
    subscribed yes|no
    replay requests N
    invalid requests N
    cut by bytes N
    replayed py-a: SEQ SEQ ...
    replayed py-b: SEQ SEQ ...

usage: foreign_publisher.py [--replay-bytes N] [--max-seconds S] [--heartbeat-ms MS]
"""
import argparse
import signal
import sys
import time

import msgpack
import zmq

HEARTBEAT_TOPIC = b"\x00hb"
MAX_SEQ = 2**63 - 1                  # publisher_v1 P-SEQ-4
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # reading_v1 section 5
MAX_BATCH = 10_000
PUBLISHER_ID = "py-foreign"
BASE_TS_US = 1_763_719_200_000_000   # 2025-11-21T10:00:00Z


def reading_values(sensor, seq):
    """The reading a sensor measured for seq: values float32 holds exactly."""
    temperature = 20.0 + seq * 0.25 if sensor == "py-a" else -10.0 - seq * 0.5
    humidity = 40.0 + seq * 0.5 if sensor == "py-a" else 90.0 - seq
    extras = {"battery_v": 3.25} if (sensor, seq) == ("py-a", 5) else None
    return temperature, humidity, extras


def encode_readings(sensor, readings):
    """A readings payload (reading_v1 section 3): [1, 0, sensor, [[seq, ts, t, h(, extras)]]]."""
    rows = []
    for seq, ts, temperature, humidity, extras in readings:
        row = [seq, ts, temperature, humidity]
        if extras:
            row.append(extras)
        rows.append(row)
    # float32 for every float, as rill writes temperature and humidity (decoders take any form).
    return msgpack.packb([1, 0, sensor, rows], use_bin_type=True, use_single_float=True)


class Outbox:
    """What the publisher holds per sensor (publisher_v1 section 3); in memory for the test:
    a real one is on disk and written before the frame is sent."""

    def __init__(self):
        self.readings = {}   # sensor -> {seq: (seq, ts, t, h, extras)}
        self.newest = {}     # sensor -> newest seq assigned
        self.first = {}      # sensor -> oldest seq still held

    def assign(self, sensor, count):
        """Assigns the next `count` seqs of `sensor` and stores the readings."""
        out = []
        for _ in range(count):
            seq = self.newest.get(sensor, 0) + 1
            if seq > MAX_SEQ:
                raise OverflowError(sensor)
            temperature, humidity, extras = reading_values(sensor, seq)
            r = (seq, BASE_TS_US + seq * 1_000_000, temperature, humidity, extras)
            self.readings.setdefault(sensor, {})[seq] = r
            self.newest[sensor] = seq
            self.first.setdefault(sensor, seq)
            out.append(r)
        return out

    def drop_through(self, sensor, last):
        """Drops the oldest readings of `sensor` up to `last` (a full outbox)."""
        held = self.readings.get(sensor, {})
        for seq in [s for s in held if s <= last]:
            del held[seq]
        self.first[sensor] = last + 1

    def first_available(self, sensor):
        newest = self.newest.get(sensor, 0)
        held = self.readings.get(sensor, {})
        return self.first[sensor] if held else newest + 1


class ReplayService:
    """replay_v1 over rpc_v1 on a ROUTER socket."""

    def __init__(self, socket, outbox, byte_budget):
        self.socket = socket
        self.outbox = outbox
        self.byte_budget = byte_budget
        self.requests = 0
        self.invalid = 0
        self.cut_by_bytes = 0
        self.replayed = {"py-a": set(), "py-b": set()}

    def serve_one(self):
        frames = self.socket.recv_multipart()
        if len(frames) < 2:
            self.invalid += 1
            return
        envelope, body = frames[:-1], frames[-1]  # [id, body] or [id, b"", body] (REQ)
        try:
            msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception:
            self.invalid += 1  # not parseable up to the msgid: dropped, no answer (rpc_v1)
            return
        if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[1], int) \
                or not 0 <= msg[1] < 2**32:
            self.invalid += 1
            return
        msgid = msg[1]
        error, result = None, None
        if len(msg) != 4 or msg[0] != 0 or not isinstance(msg[2], str) \
                or not isinstance(msg[3], list):
            error = "invalid request: not [0, msgid, method, params]"
        elif msg[2] != "replay.v1":
            error = f"unknown method '{msg[2]}'"
        else:
            error, result = self.replay(msg[3])
        if error is not None:
            self.invalid += 1
        self.socket.send_multipart(envelope + [msgpack.packb([1, msgid, error, result],
                                                             use_bin_type=True)])

    def replay(self, params):
        if len(params) < 3:
            return "invalid replay request: fewer than 3 params", None
        sensor, from_seq, max_readings = params[:3]
        if not isinstance(sensor, str) or not 1 <= len(sensor.encode()) <= 64:
            return "invalid replay request: sensor", None
        if not isinstance(from_seq, int) or not 1 <= from_seq <= MAX_SEQ:
            return "invalid replay request: from_seq", None
        if not isinstance(max_readings, int) or not 1 <= max_readings <= MAX_BATCH:
            return "invalid replay request: max_readings", None
        self.requests += 1
        newest = self.outbox.newest.get(sensor, 0)
        first_available = self.outbox.first_available(sensor)
        held = self.outbox.readings.get(sensor, {})
        chosen = []
        for seq in range(max(from_seq, first_available), newest + 1):
            if len(chosen) == max_readings:
                break
            candidate = chosen + [held[seq]]
            # Cut by bytes as well as by count; at least one reading always goes.
            if chosen and len(encode_readings(sensor, candidate)) > self.byte_budget:
                self.cut_by_bytes += 1
                break
            chosen = candidate
        payload = encode_readings(sensor, chosen) if chosen else b""
        lost = [from_seq, first_available - 1] if from_seq < first_available else None
        if sensor in self.replayed:
            self.replayed[sensor].update(r[0] for r in chosen)
        return None, [payload, first_available, newest, lost]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay-bytes", type=int, default=MAX_PAYLOAD_BYTES)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--heartbeat-ms", type=int, default=200)
    args = parser.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ctx = zmq.Context()
    stream = ctx.socket(zmq.XPUB)  # PUB would do; XPUB lets the test wait for a subscriber
    stream.setsockopt(zmq.LINGER, 0)
    stream.bind("tcp://127.0.0.1:*")
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    stream_endpoint = stream.getsockopt(zmq.LAST_ENDPOINT).decode()
    replay_endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
    # Announced with a wildcard host (publisher_v1 P5.6): "where you reached my stream", which is
    # 127.0.0.1 here too.
    announced_replay = "tcp://*:" + replay_endpoint.rsplit(":", 1)[1]

    outbox = Outbox()
    service = ReplayService(router, outbox, args.replay_bytes)

    def heartbeat():
        payload = msgpack.packb([1, 1, PUBLISHER_ID, int(time.time() * 1_000_000),
                                 args.heartbeat_ms, announced_replay, dict(outbox.newest)],
                                use_bin_type=True)
        stream.send_multipart([HEARTBEAT_TOPIC, payload])

    def send(sensor, readings):
        stream.send_multipart([sensor.encode(), encode_readings(sensor, readings)])

    # Right after start: a heartbeat (nothing held yet), then py-b 1..2 go out before anyone
    # subscribed (PUB drops them) and the outbox drops them too.
    heartbeat()
    print(f"stream {stream_endpoint}\nreplay {replay_endpoint}", flush=True)
    send("py-b", outbox.assign("py-b", 2))
    outbox.drop_through("py-b", 2)

    # The frames to publish once a subscriber is there: (sensor, readings, sent or dropped on
    # purpose). py-a 1..20 by two, without 7..10; py-b 3..12 one by one, then 13..15 unsent.
    plan = []
    for i in range(10):
        plan.append(("py-a", 2, 2 * i + 1 not in (7, 9)))
        plan.append(("py-b", 1, True))
    plan += [("py-b", 1, False)] * 3

    subscribed = False
    poller = zmq.Poller()
    poller.register(stream, zmq.POLLIN)
    poller.register(router, zmq.POLLIN)
    start = time.monotonic()
    next_heartbeat = start + args.heartbeat_ms / 1000
    next_frame = start
    while not stop and time.monotonic() - start < args.max_seconds:
        for sock, _ in poller.poll(20):
            if sock is router:
                service.serve_one()
            else:
                frame = stream.recv()
                subscribed = subscribed or frame[:1] == b"\x01"
        now = time.monotonic()
        if subscribed and plan and now >= next_frame:
            sensor, count, goes_out = plan.pop(0)
            readings = outbox.assign(sensor, count)
            if goes_out:
                send(sensor, readings)
            next_frame = now + 0.02
            if not plan:
                heartbeat()  # the end of a finite run: announce the tail at once
                next_heartbeat = now + args.heartbeat_ms / 1000
        if now >= next_heartbeat:
            heartbeat()
            next_heartbeat = now + args.heartbeat_ms / 1000

    print(f"subscribed {'yes' if subscribed else 'no'}")
    print(f"replay requests {service.requests}")
    print(f"invalid requests {service.invalid}")
    print(f"cut by bytes {service.cut_by_bytes}")
    for sensor, seqs in sorted(service.replayed.items()):
        print(f"replayed {sensor}: " + " ".join(str(s) for s in sorted(seqs)), flush=True)
    stream.close()
    router.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
