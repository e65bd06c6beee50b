#!/usr/bin/python3
"""test_http_sse.py - GET /api/v1/events: Server-Sent Events carrying the
same events and JSON as the ZeroMQ stream (compared field by field with a
pyzmq subscriber on the same broker), the prefix filter (event names and
"name/topic"), a slow reader that loses events (counted, never slowing
the broker) and is closed, and the limit on open streams.

Prints "N passed, M failed" last.
"""
import json
import os
import socket
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

R = brokerctl.Results("http sse")
brokerctl.deadline(R, 120)
TOKEN = "sse-token-0123456789abcdef"


def collect(reader, want, timeout=5.0):
    end = time.time() + timeout
    while len(reader.events) < want and time.time() < end:
        reader.read(0.3)
    return reader.events


def zmq_collect(sub, want, timeout=5.0):
    out = []
    end = time.time() + timeout
    while len(out) < want and time.time() < end:
        if sub.poll(200):
            frames = sub.recv_multipart()
            out.append((frames[0].decode(), json.loads(frames[1])))
    return out


def strip(o):
    return {k: v for k, v in o.items() if k not in ("seq", "dropped")}


def test_same_as_zeromq():
    b = httpctl.start("midge_http_token_file {files}/tokens\n"
                      "midge_hooks_endpoint tcp://127.0.0.1:{port3}\n", tokens={TOKEN: "admin"})
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.connect("tcp://127.0.0.1:%d" % b.ports["port3"])
    sub.setsockopt(zmq.SUBSCRIBE, b"client.")
    sub.setsockopt(zmq.SUBSCRIBE, b"message.published/sse/")
    s1 = httpctl.SSEReader(httpctl.sse_open(b, "client.", token=TOKEN))
    s2 = httpctl.SSEReader(httpctl.sse_open(b, "message.published/sse/", token=TOKEN))
    s1.read(1.0)
    s2.read(1.0)
    R.check("stream answers 200 text/event-stream",
            s1.headers and " 200 " in s1.headers.splitlines()[0] and
            "text/event-stream" in s1.headers, s1.headers)
    time.sleep(0.5)  # ZeroMQ's subscription travels
    c = mqtt.Client(client_id="sse-client", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    time.sleep(0.3)
    c.subscribe("sse/#")
    c.publish("sse/a", b"1")
    c.publish("other/b", b"2")
    c.publish("sse/c", b"3")
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()
    ev1 = collect(s1, 3)
    ev2 = collect(s2, 2)
    zev = zmq_collect(sub, 5)
    names = [e[0] for e in ev1]
    R.check("prefix client.: connected, subscribed, disconnected",
            names == ["client.connected", "client.subscribed", "client.disconnected"], names)
    R.check("seq numbers each stream's events", [e[2] for e in ev1] == [1, 2, 3] and
            [e[1]["seq"] for e in ev1] == [1, 2, 3])
    R.check("prefix with a topic: only message.published on sse/",
            [(e[0], e[1]["topic"]) for e in ev2] ==
            [("message.published", "sse/a"), ("message.published", "sse/c")], ev2)
    zclient = [o for n, o in zev if n.startswith("client.")]
    zmsg = [o for n, o in zev if n.startswith("message.")]
    R.check("the same JSON as ZeroMQ (client events)",
            [strip(e[1]) for e in ev1] == [strip(o) for o in zclient], (ev1, zclient))
    R.check("the same JSON as ZeroMQ (message events)",
            [strip(e[1]) for e in ev2] == [strip(o) for o in zmsg], (ev2, zmsg))
    s1.sock.close()
    s2.sock.close()
    sub.close()
    b.stop()


def test_slow_reader():
    b = httpctl.start("midge_http_token_file {files}/tokens\nmidge_http_sse_buffer 65536\n"
                      "midge_http_sse_clients 2\n", tokens={TOKEN: "admin"})
    # a reader that reads nothing, with the smallest receive buffer
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", b.http_port))
    s.sendall(b"GET /api/v1/events?prefix= HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + TOKEN.encode() + b"\r\n\r\n")
    time.sleep(0.3)
    other = httpctl.SSEReader(httpctl.sse_open(b, "client.", token=TOKEN))
    other.read(0.5)
    third = httpctl.SSEReader(httpctl.sse_open(b, "", token=TOKEN))
    third.read(1.0)
    R.check("streams over midge_http_sse_clients refused (503)",
            third.headers is not None and " 503 " in third.headers.splitlines()[0], third.headers)
    third.sock.close()
    c = mqtt.Client(client_id="flood", protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    t0 = time.time()
    for i in range(40000):
        c.publish("flood/%d" % (i % 10), b"x" * 100)
    # the broker keeps up with MQTT meanwhile: a QoS 1 round trip is quick
    done = c.publish("flood/done", b"!", qos=1)
    done.wait_for_publish(10)
    R.check("the broker is not slowed by the stalled stream (40k messages in < 25 s)",
            done.is_published() and time.time() - t0 < 25, time.time() - t0)
    st, text = httpctl.metrics(b, token=TOKEN)
    dropped = httpctl.metric_value(text, "midge_http_sse_dropped_total") or 0
    R.check("events the slow reader had no room for are counted", dropped > 1000, dropped)
    # closed once events waited 5 s for it; traffic goes on meanwhile, so
    # that the kernel's send buffer (up to tcp_wmem's 4 MiB) fills up
    end = time.time() + 25
    closed = 0
    while time.time() < end and not closed:
        for i in range(2000):
            c.publish("flood/more/%d" % (i % 10), b"y")
        time.sleep(0.5)
        st, text = httpctl.metrics(b, token=TOKEN)
        closed = httpctl.metric_value(text, "midge_http_sse_slow_closed_total") or 0
    R.check("the slow stream is closed and counted", closed >= 1, closed)
    s.settimeout(5)
    got, eof = 0, False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                eof = True
                break
            got += len(d)
    except socket.timeout:
        pass
    R.check("the slow reader finds its stream ended", eof, got)
    R.check("the log says why", "event stream closed: its reader took nothing" in b.log_text())
    other.read(0.5)
    c.disconnect()
    c.loop_stop()
    collect(other, 2, 3)
    R.check("a reading stream kept its events meanwhile",
            [e[0] for e in other.events] == ["client.connected", "client.disconnected"],
            [e[0] for e in other.events])
    other.sock.close()
    s.close()
    b.stop()


httpctl.run_tests(R, [test_same_as_zeromq, test_slow_reader])
R.finish()
