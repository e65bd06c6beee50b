#!/usr/bin/python3
"""Writes the seed corpus of fuzz/fuzz-store (fuzz/corpus/store/): row
scripts (first byte odd) that build valid databases of midge's schema, each
a different mix of what recovery reads. See fuzz/fuzz_store.c for the
encoding; image seeds come from running the harness over a row seed with
MIDGE_FUZZ_STORE_IMAGE set.

    python3 fuzz/store_seeds.py fuzz/corpus/store
"""
import os
import struct
import sys

T = {"sessions": 0, "subscriptions": 1, "messages": 2, "queue": 3, "inflight": 4,
     "incoming_qos2": 5, "wills": 6, "retained": 7, "history": 8}
WORDS = ["a/b", "a/#", "a/+/c", "h/1", "h/#", "z", "$SYS/x", "+", "#", "", "$share/g/a/#",
         "s", "p", "w"]


def i(k):
    """A small integer (0..31)."""
    return bytes([k << 3])


def big(k):
    return bytes([3]) + struct.pack(">q", k)


def w(word):
    return bytes([WORDS.index(word) << 3 | 4])


def raw(b):
    return bytes([5, len(b)]) + b


NULL = bytes([6])


def row(table, *vals):
    return bytes([T[table]]) + b"".join(vals)


NOW = 1700000000000
# sessions: sid, client_id, expiry, protocol, disconnected_at, user_name (NULL:
# anonymous), listener
session = row("sessions", i(1), w("s"), big(3600), i(4), big(NOW - 1000), raw(b"alice"), i(1))
session5 = row("sessions", i(2), w("p"), big(100), i(5), i(0), NULL, i(0))
# messages: id, topic, payload, props, origin, origin_user, origin_listener
# (-1: the broker), qos, retain, expiry_at
msg1 = row("messages", i(1), w("a/b"), raw(b"hi"), raw(b""), w("p"), NULL, i(0), i(1), i(0), i(0))
msg2 = row("messages", i(2), w("h/1"), raw(b"yo"), raw(b"\x01\x01"), w("s"), raw(b"alice"), i(1), i(2), i(1),
           big(NOW + 5000))
msg3 = row("messages", i(3), w("z"), raw(b"!"), raw(b""), w(""), NULL, big(-1), i(0), i(1), i(0))
seeds = {
    "session": session,
    "queue": session + msg1 + msg2 + row("queue", i(1), i(0), i(1), i(1), i(0), raw(b""))
    + row("queue", i(1), i(1), i(2), i(2), i(1), raw(b"\x00\x00\x00\x07")),
    "inflight": session + msg1 + row("inflight", i(1), i(5), i(0), i(1), i(1), i(1), i(0), raw(b""))
    + row("inflight", i(1), i(6), i(1), i(3), i(0), i(2), i(2), raw(b"")),
    "subs": session + session5 + row("subscriptions", i(1), w("a/#"), i(1), i(0))
    + row("subscriptions", i(2), w("$share/g/a/#"), i(2), i(9)),
    "retained": msg2 + msg3 + row("retained", w("h/1"), i(2)) + row("retained", w("z"), i(3)),
    "history": msg2 + msg3 + row("history", w("h/#"), i(1), big(NOW - 10), i(2))
    + row("history", w("z"), i(2), big(NOW - 5), i(3)) + row("history", w("a/#"), i(3), big(NOW), i(3)),
    "wills": session + session5 + row("wills", i(2), w("w"), raw(b"bye"), raw(b"\x18\x00\x00\x00\x05"), i(1), i(0), i(30))
    + row("incoming_qos2", i(2), i(7)),
    "everything": session + session5 + msg1 + msg2 + msg3
    + row("subscriptions", i(1), w("a/#"), i(2), i(0))
    + row("queue", i(1), i(0), i(1), i(1), i(0), raw(b""))
    + row("inflight", i(1), i(4), i(0), i(2), i(2), i(2), i(0), raw(b""))
    + row("incoming_qos2", i(1), i(9)) + row("retained", w("z"), i(3))
    + row("history", w("h/#"), i(4), big(NOW), i(2))
    + row("wills", i(1), w("w"), raw(b"x"), raw(b""), i(0), i(0), i(0)),
    "bad-queue-hole": session + msg1 + row("queue", i(1), i(0), i(1), i(1), i(0), raw(b""))
    + row("queue", i(1), i(2), i(1), i(1), i(0), raw(b"")),
    "bad-dangling": session + row("queue", i(1), i(0), i(9), i(1), i(0), raw(b"")),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "store")
os.makedirs(out, exist_ok=True)
for name, body in seeds.items():
    with open(os.path.join(out, "rows-" + name), "wb") as f:
        f.write(b"\x01" + body)
