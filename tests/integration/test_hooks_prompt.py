#!/usr/bin/python3
"""test_hooks_prompt.py - a new ZeroMQ subscriber is seen at once.

midge polls its XPUB socket's ZMQ_FD in the event loop, so a subscription
is known as soon as ZeroMQ delivers it, not at the next one-second tick.
Each round subscribes a fresh SUB socket to one topic's events, waits
150 ms, publishes on that topic, and must get the event well under a
second after subscribing. Without the polling a round passes only when a
tick happens to fall into those 150 ms (about one in seven), so five
rounds in a row do not.

Prints "N passed, M failed" last; exits 1 if anything failed.
"""
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet  # noqa: E402

ROUNDS = 5
SETTLE_S = 0.15
WITHIN_S = 0.5

r = brokerctl.Results("hooks_prompt")
brokerctl.deadline(r, 60)


def main():
    hport = brokerctl.free_port()
    endpoint = "tcp://127.0.0.1:%d" % hport
    # sys_interval 0: no $SYS traffic whose events could make midge look
    # at its sockets for another reason.
    b = brokerctl.start("listener {port} 127.0.0.1\nsys_interval 0\n"
                        "midge_hooks_endpoint %s\n" % endpoint)
    import socket
    pub = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    pub.sendall(connect_packet("prompt-pub"))
    ack = read_packet(pub)
    r.check("publisher connected", ack is not None and ack[0] == 0x20, ack)
    ctx = zmq.Context.instance()
    for i in range(ROUNDS):
        topic = "prompt/%d/%d" % (os.getpid(), i)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, ("message.published/" + topic).encode())
        t0 = time.monotonic()
        time.sleep(SETTLE_S)
        pub.sendall(publish_packet(topic, b"hello"))
        got = None
        if sub.poll(int(WITHIN_S * 1000)):
            got = sub.recv_multipart()
        took = time.monotonic() - t0
        r.check("round %d: event %.2f s after subscribing" % (i, took),
                got is not None and got[0].decode().endswith(topic) and got[-1] == b"hello",
                "nothing within %.2f s" % took if got is None else repr(got[:1]))
        sub.close()
    pub.close()
    r.check("broker alive", b.alive(), b.log_text()[-500:])
    b.stop()
    r.finish()


if __name__ == "__main__":
    main()
