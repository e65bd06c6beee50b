#!/usr/bin/python3
"""test_http_auth_load.py - checking HTTP Basic passwords never stalls MQTT.

midge_http_password_file holds argon2id hashes (`midge passwd`, tens of
milliseconds each). Checking them is the hashing pool's work, as for CONNECT
passwords: the request is suspended meanwhile, never the engine thread. So:
- an open-loop stream of MQTT QoS 1 round trips (PUBLISH -> PUBACK, sent at
  a fixed rate, latency measured from the time each was due) keeps its p99
  while 20 admin requests with the right password and 50 with wrong ones
  (from 10 loopback addresses, so the per-address limit lets many through)
  arrive in parallel; compared with the same stream alone. With the check on
  the engine thread every hash delays every message behind it and the p99
  is the length of the stall;
- checks waiting for the pool are bounded: beyond midge_http_auth_pending,
  503 with Retry-After;
- repeated failures from one address: 429 with Retry-After;
- the right password still works after all this, and costs one hash for
  many requests (verified credentials are remembered).

Prints "N passed, M failed" last.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

RATE = 400         # round trips a second
SECONDS = 3.0
# With the check on the engine thread, the argon2id hashes stall it for
# seconds (about 2 s measured on main's code); off it, a loaded 2-core
# machine still answers well within this.
P99_BOUND_MS = 150.0
P99_FACTOR = 4.0


def make_passwd(users):
    d = tempfile.mkdtemp(prefix="midge-http-load-")
    path = os.path.join(d, "passwd")
    first = True
    for u, p in users.items():
        cmd = [brokerctl.midge_binary(), "passwd", "-b"] + (["-c"] if first else []) + [path, u, p]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
        first = False
    return path


def start(passwd, extra=""):
    return httpctl.start("midge_http_password_file %s\nmidge_http_admin boss\n%s" % (passwd, extra))


def request_from(b, src, method, path, user, password, timeout=20):
    """One request with Basic credentials from loopback address src."""
    import base64
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=timeout,
                                   source_address=(src, 0))
    try:
        auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        c.request(method, path, headers={"Authorization": "Basic " + auth})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    except OSError as e:
        return repr(e), {}
    finally:
        c.close()


def mqtt_stream(b, seconds, rate, start_evt=None):
    """QoS 1 round trips at a fixed rate; returns sorted latencies (ms)
    measured from when each PUBLISH was due, and how many never came back."""
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(brokerctl.connect_packet("load-probe"))
    p = brokerctl.read_packet(s)
    if not p or p[0] != 0x20:
        raise RuntimeError("no CONNACK: %r" % (p,))
    n = int(seconds * rate)
    due = {}
    lat = []
    done = threading.Event()

    def reader():
        while len(lat) < n:
            pkt = brokerctl.read_packet(s, timeout=10)
            if pkt is None:
                break
            if pkt[0] >> 4 == 4:  # PUBACK
                pid = int.from_bytes(pkt[1][:2], "big")
                t = due.pop(pid, None)
                if t is not None:
                    lat.append((time.monotonic() - t) * 1000.0)
        done.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    if start_evt:
        start_evt.set()
    t0 = time.monotonic()
    for i in range(n):
        t = t0 + i / rate
        wait = t - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        pid = i % 65535 + 1
        due[pid] = t
        s.sendall(brokerctl.publish_packet("load/probe", b"x" * 32, qos=1, packet_id=pid))
    done.wait(15)
    s.close()
    return sorted(lat), n - len(lat)


def p99(lat):
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")


def test_no_stall():
    passwd = make_passwd({"boss": "boss-pw", "viewer": "viewer-pw"})
    b = start(passwd)
    # warm up, and the baseline without admin requests
    mqtt_stream(b, 0.5, RATE)
    base, lost0 = mqtt_stream(b, SECONDS, RATE)
    # the burst comes from another process: its threads must not take
    # the measuring threads' interpreter lock
    burst = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--burst",
                              str(b.http_port)], stdout=subprocess.PIPE, text=True)

    def fire():
        go.wait(5)
        time.sleep(0.3)  # into the stream
        os.kill(burst.pid, signal.SIGUSR1)

    R.check("burst process ready", burst.stdout.readline().strip() == "ready")
    go = threading.Event()
    firer = threading.Thread(target=fire)
    firer.start()
    load, lost1 = mqtt_stream(b, SECONDS, RATE, start_evt=go)
    firer.join(10)
    try:
        out, _ = burst.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        brokerctl.kill(burst)
        out = "[]"
    results = json.loads(out or "[]")
    bp, lp = p99(base), p99(load)
    print("MQTT QoS 1 p99: %.1f ms alone, %.1f ms with 70 admin requests (loaded machine)" %
          (bp, lp))
    R.check("every round trip answered (%d, %d lost)" % (lost0, lost1), lost0 == 0 and lost1 == 0)
    R.check("p99 with the admin requests under max(%.0f ms, %.0fx alone): %.1f ms vs %.1f ms" %
            (P99_BOUND_MS, P99_FACTOR, bp, lp), lp < max(P99_BOUND_MS, P99_FACTOR * bp))
    right = [st for ok, st in results if ok]
    wrong = [st for ok, st in results if not ok]
    R.check("all 70 answered", len(results) == 70, results)
    R.check("right password: 200 (or 503 while the pool was full)",
            right.count(200) >= 1 and all(st in (200, 503) for st in right), right)
    R.check("wrong passwords: 401, 429 or 503, never 200",
            wrong and all(st in (401, 429, 503) for st in wrong), wrong)
    st, _ = request_from(b, "127.0.0.1", "GET", "/api/v1/clients", "boss", "boss-pw")
    R.check("right password works after", st == 200, st)
    st, _ = request_from(b, "127.0.0.1", "GET", "/api/v1/clients", "viewer", "viewer-pw")
    R.check("another user's right password works after (fresh check)", st == 200, st)
    R.check("broker alive", b.alive())
    b.stop()


def burst_main(port):
    """The child of test_no_stall: on SIGUSR1, 20 requests with the right
    password and 50 with wrong ones at once; prints [[right, status]...]."""
    ready = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *a: ready.set())
    print("ready", flush=True)
    ready.wait(20)

    class B:
        http_port = port
    results = []
    lock = threading.Lock()

    def admin(src, pw):
        st, _ = request_from(B, src, "GET", "/api/v1/clients", "boss", pw)
        with lock:
            results.append((pw == "boss-pw", st))

    threads = [threading.Thread(target=admin, args=("127.0.0.1", "boss-pw")) for _ in range(20)]
    threads += [threading.Thread(target=admin, args=("127.0.0.%d" % (2 + i % 10), "wrong-%d" % i))
                for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    print(json.dumps(results))


def test_one_hash_for_a_burst():
    passwd = make_passwd({"boss": "boss-pw", "viewer": "viewer-pw"})
    b = start(passwd)
    res = []
    lock = threading.Lock()

    def one():
        st, _ = request_from(b, "127.0.0.1", "GET", "/api/v1/clients", "viewer", "viewer-pw")
        with lock:
            res.append(st)

    ts = [threading.Thread(target=one) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    R.check("20 parallel requests with the same new credentials: all 200", res == [200] * 20, res)
    _, text = httpctl.metrics(b, user="viewer", password="viewer-pw")
    R.check("... and one password check for all of them (the rest waited for it or hit the "
            "cache)", httpctl.metric_value(text, "midge_http_auth_checks_total") == 1.0,
            httpctl.metric_value(text, "midge_http_auth_checks_total"))
    R.check("no check left pending", httpctl.metric_value(text, "midge_http_auth_pending") == 0.0)
    # a request with a body waits for its check and keeps its body
    st, _, body = httpctl.request(b, "POST", "/api/v1/publish", user="boss", password="boss-pw",
                                  body={"topic": "t/x", "payload": "hello"})
    R.check("POST with a body, credentials checked on the pool: 200",
            st == 200 and b"receivers" in body, (st, body))
    st, _, _ = httpctl.request(b, "POST", "/api/v1/publish", user="boss", password="nope",
                               body={"topic": "t/x", "payload": "hello"})
    R.check("POST with a body and a wrong password: 401", st == 401, st)
    st, _, _ = httpctl.request(b, "DELETE", "/api/v1/clients/x", user="viewer",
                               password="viewer-pw")
    R.check("a read user on an admin route: 403", st == 403, st)
    b.stop()


def test_pending_bound():
    passwd = make_passwd({"boss": "boss-pw"})
    b = start(passwd, "midge_http_auth_pending 2\nmidge_auth_threads 1\n")
    results = []
    lock = threading.Lock()

    def one(src, pw):
        st, h = request_from(b, src, "GET", "/api/v1/clients", "boss", pw)
        with lock:
            results.append((st, h.get("retry-after")))

    # distinct wrong passwords from distinct addresses: each needs its
    # own check, none is throttled
    threads = [threading.Thread(target=one, args=("127.0.1.%d" % (1 + i), "w%d" % i))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(st for st, _ in results)
    busy = [ra for st, ra in results if st == 503]
    R.check("beyond midge_http_auth_pending 2: 503", len(busy) >= 1 and codes.count(401) >= 2,
            codes)
    R.check("503 carries Retry-After", busy and all(ra for ra in busy), busy)
    R.check("nothing else", all(st in (401, 503) for st in codes), codes)
    st, _ = request_from(b, "127.0.0.1", "GET", "/api/v1/clients", "boss", "boss-pw")
    R.check("right password works after the burst", st == 200, st)
    _, text = httpctl.metrics(b, user="boss", password="boss-pw")
    R.check("refusals counted", (httpctl.metric_value(text, "midge_http_auth_busy_total") or 0)
            >= 1)
    b.stop()


def test_throttle():
    passwd = make_passwd({"boss": "boss-pw", "mallory": "m-pw"})
    b = start(passwd)
    src = "127.0.2.1"
    codes = [request_from(b, src, "GET", "/metrics", "mallory", "guess-%d" % i)[0]
             for i in range(7)]
    R.check("sequential failures: 401 until the limit, then 429",
            codes[:5] == [401] * 5 and codes[5:] == [429] * 2, codes)
    st, h = request_from(b, src, "GET", "/metrics", "mallory", "m-pw")
    R.check("throttled address: 429 with Retry-After", st == 429 and "retry-after" in h, st)
    st, _ = request_from(b, "127.0.2.2", "GET", "/metrics", "mallory", "m-pw")
    R.check("another address is not throttled", st == 200, st)
    # parallel guesses from one address: the checks in flight count, so a
    # burst cannot run more than the limit of hashes
    res = []
    lock = threading.Lock()

    def one(i):
        st, _ = request_from(b, "127.0.2.3", "GET", "/metrics", "mallory", "p-%d" % i)
        with lock:
            res.append(st)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    R.check("20 parallel guesses from one address: at most 5 checked (401), the rest 429",
            len(res) == 20 and res.count(401) <= 5 and res.count(429) >= 15, sorted(res))
    log = b.log_text()
    R.check("failed login logged", "failed login from 127.0.2.1" in log)
    # a user name with control characters is logged escaped
    request_from(b, "127.0.2.4", "GET", "/metrics", "evil\x1b[31m\nname", "x")
    log = b.log_text()
    R.check("control characters escaped in the log", "evil\\x1b[31m\\x0aname" in log and
            "\x1b" not in log, [l for l in log.splitlines() if "evil" in l])
    st, _ = request_from(b, "127.0.0.1", "GET", "/metrics", "boss", "boss-pw")
    R.check("valid credentials still work after", st == 200, st)
    b.stop()


if len(sys.argv) == 3 and sys.argv[1] == "--burst":
    burst_main(int(sys.argv[2]))
    sys.exit(0)
R = brokerctl.Results("http auth load")
brokerctl.deadline(R, 110)
httpctl.run_tests(R, [test_no_stall, test_one_hash_for_a_burst, test_pending_bound,
                      test_throttle])
R.finish()
