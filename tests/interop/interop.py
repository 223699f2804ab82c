#!/usr/bin/python3
"""Interoperability test of the rill wire format, written from proto/reading_v1.md alone.

1. Python publishes readings (and garbage, which must be skipped); the C++ `tap` decodes them.
2. The C++ `interop-peer` publishes a known set; Python decodes it.

usage: interop.py TAP INTEROP_PEER
"""
import json
import math
import struct
import subprocess
import sys
import time

import msgpack
import zmq

HEARTBEAT_TOPIC = b"\x00hb"
CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(what)
    CHECKS += 1


def f32(x):
    """The value a float32 field can hold for x."""
    return struct.unpack(">f", struct.pack(">f", x))[0]


class Float32:
    """Packs as msgpack float32 (0xca), the form rill writes."""

    def __init__(self, v):
        self.v = v


def default(obj):
    raise TypeError(obj)


def pack(obj):
    # msgpack-python writes float64 by default; build float32 where asked by hand.
    if isinstance(obj, Float32):
        return b"\xca" + struct.pack(">f", obj.v)
    if isinstance(obj, list):
        n = len(obj)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(pack(x) for x in obj)
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(pack(k) + pack(v) for k, v in obj.items())
    return msgpack.packb(obj, use_bin_type=True)


def iso(ts_us):
    secs, frac = divmod(ts_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


def python_publishes(tap):
    ctx = zmq.Context.instance()
    xpub = ctx.socket(zmq.XPUB)
    xpub.bind("tcp://127.0.0.1:*")
    endpoint = xpub.getsockopt(zmq.LAST_ENDPOINT).decode()
    proc = subprocess.Popen([tap, endpoint, "--count", "5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # Wait until tap has subscribed to the sensors (an empty prefix or "kit...").
        deadline = time.monotonic() + 20
        subscribed = False
        while not subscribed and time.monotonic() < deadline:
            if xpub.poll(200):
                frame = xpub.recv()
                subscribed = frame[:1] == b"\x01" and b"kitchen".startswith(frame[1:])
        check(subscribed, "tap did not subscribe within 20 s")

        ts = 1_763_719_200_000_000
        readings = [
            # float32 temperature/humidity, as rill writes them
            [1, ts, Float32(21.5), Float32(40.25)],
            # float64 and integer numbers, which decoders must accept; nil extras; a future field
            [2, ts + 5_000_000, -3.125, 55, None, "a later minor version's field"],
            # extras map
            [3, ts + 10_000_000, Float32(22.0), Float32(41.0), {"co2_ppm": 412, "lux": 0.5}],
        ]
        xpub.send_multipart([b"kitchen", pack([1, 0, "kitchen", readings])])
        # Garbage that tap must count and skip: not msgpack, a wrong topic, an unknown version,
        # a single frame, three frames.
        xpub.send_multipart([b"kitchen", b"\xc1\xc1\xc1"])
        xpub.send_multipart([b"kitchenette", pack([1, 0, "kitchen", readings])])
        xpub.send_multipart([b"kitchen", pack([2, 0, "kitchen", readings])])
        xpub.send(b"kitchen")
        xpub.send_multipart([b"kitchen", b"\x90", b"\x90"])
        # A heartbeat, then two more readings in separate messages.
        xpub.send_multipart([HEARTBEAT_TOPIC,
                             pack([1, 1, "py", ts, 1000, "", {"kitchen": 5}])])
        xpub.send_multipart([b"kitchen", pack([1, 0, "kitchen", [[4, ts + 15_000_000, 0, 0]]])])
        xpub.send_multipart([b"kitchen",
                             pack([1, 0, "kitchen", [[5, ts + 20_000_000, Float32(-40.5), 100]]])])
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    check(proc.returncode == 0, f"tap exited {proc.returncode}: {err}")
    lines = [json.loads(line) for line in out.splitlines()]
    check(len(lines) == 5, f"tap printed {len(lines)} readings, expected 5: {out}")
    expected = [
        (1, ts, 21.5, 40.25, None),
        (2, ts + 5_000_000, -3.125, 55.0, None),
        (3, ts + 10_000_000, 22.0, 41.0, {"co2_ppm": 412.0, "lux": 0.5}),
        (4, ts + 15_000_000, 0.0, 0.0, None),
        (5, ts + 20_000_000, -40.5, 100.0, None),
    ]
    for line, (seq, t, temp, hum, extras) in zip(lines, expected):
        check(line["sensor"] == "kitchen", f"sensor: {line}")
        check(line["seq"] == seq, f"seq: {line}")
        check(line["ts"] == iso(t), f"ts: {line} vs {iso(t)}")
        check(math.isclose(line["temperature"], f32(temp), rel_tol=1e-6), f"temperature: {line}")
        check(math.isclose(line["humidity"], f32(hum), rel_tol=1e-6), f"humidity: {line}")
        check(line.get("extras") == extras, f"extras: {line}")
    xpub.close()


def python_decodes(peer):
    proc = subprocess.Popen([peer], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        check(endpoint.startswith("tcp://127.0.0.1:"), f"peer endpoint: {endpoint!r}")
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.connect(endpoint)
        sub.subscribe(b"")
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            if sub.poll(200):
                got.append(sub.recv_multipart())
        check(len(got) == 3, f"received {len(got)} messages from the peer, expected 3")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()

    decoded = {}
    for frames in got:
        check(len(frames) == 2, "two frames per message")
        topic, payload = frames
        msg = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        check(isinstance(msg, list) and msg[0] == 1, f"version 1: {msg!r}")
        if msg[1] == 0:
            check(topic.decode() == msg[2], "topic frame equals the sensor id")
            decoded[msg[2]] = msg[3]
        else:
            check(msg[1] == 1 and topic == HEARTBEAT_TOPIC, "heartbeat under \\0hb")
            decoded["heartbeat"] = msg

    kitchen = decoded["kitchen"]
    ts = 1_763_719_200_000_000
    check([r[0] for r in kitchen] == [1, 2, 3], "kitchen seqs")
    check([r[1] for r in kitchen] == [ts, ts + 5_000_000, ts + 10_000_000], "kitchen ts")
    check(kitchen[0][2:4] == [21.5, 40.25] and len(kitchen[0]) == 4, f"reading 1: {kitchen[0]}")
    check(kitchen[1][4] == {"pressure_hpa": 1013.25, "battery_v": 3.3}, f"extras: {kitchen[1]}")
    check(kitchen[2][2:4] == [-12.5, 100.0], f"reading 3: {kitchen[2]}")
    # Whole numbers still arrive as floats: rill always writes float32.
    check(isinstance(kitchen[2][3], float), "humidity 100 is a float32, not an integer")

    cellar = decoded["cellar-é🌡"]
    check(cellar == [[9223372036854775806, 1_763_719_200_123_456, -40.0, 0.0]], f"{cellar}")

    hb = decoded["heartbeat"]
    check(hb[2:] == ["interop-peer", 1_763_719_211_000_000, 1000, "tcp://*:5557", {"kitchen": 3}],
          f"heartbeat: {hb}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    python_publishes(sys.argv[1])
    python_decodes(sys.argv[2])
    print(f"interop: {CHECKS} checks passed")


if __name__ == "__main__":
    main()
