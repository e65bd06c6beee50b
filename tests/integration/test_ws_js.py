"""MQTT.js (npm `mqtt`, installed from tests/js/package-lock.json by
`make check`) from Node over ws and wss (MQTT 3.1.1 and 5), and in a real
headless Chromium page driven by puppeteer-core: the page is served by
midge from http_dir on the WebSocket listener itself, connects, subscribes,
publishes (a TCP subscriber hears it) and receives what a TCP client
publishes; a screenshot is saved and any console error fails the test.
Also http_dir as a file server: content types, 404, no escape from the
directory, HEAD."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
import wsraw  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

r = brokerctl.Results("ws-js")
brokerctl.deadline(r, 170)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
JS = os.path.join(SRC, "tests", "js")
BUILD = brokerctl.builddir()
# `make check` installs the packages into the build tree (tests/js/).
MODULES = next((m for m in (os.environ.get("MIDGE_JS_MODULES"),
                            os.path.join(BUILD, "tests", "js", "node_modules"),
                            os.path.join(JS, "node_modules"))
                if m and os.path.isdir(os.path.join(m, "mqtt"))), None)
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not r.check("node and the npm packages are installed (make check installs them)",
               NODE is not None and MODULES is not None, "node=%s modules=%s" % (NODE, MODULES)):
    r.finish()
ENV = dict(os.environ, NODE_PATH=MODULES)

b0 = brokerctl.start()  # only for a private directory
work = b0.dir + "-js"
os.makedirs(work, exist_ok=True)
b0.stop()
pki = pkitool.make(work, "js")
www = os.path.join(work, "www")
os.makedirs(os.path.join(www, "sub"))
shutil.copy(os.path.join(JS, "page", "index.html"), www)
shutil.copy(os.path.join(MODULES, "mqtt", "dist", "mqtt.min.js"), www)
with open(os.path.join(www, "sub", "index.html"), "w") as f:
    f.write("sub index\n")
with open(os.path.join(work, "secret.txt"), "w") as f:
    f.write("outside http_dir\n")
os.chmod(work, 0o755)

b = brokerctl.start("""listener {port} 127.0.0.1
listener {port2} 127.0.0.1
protocol websockets
http_dir %(www)s
listener {port3} 127.0.0.1
protocol websockets
http_dir %(www)s
certfile %(server)s
keyfile %(server-key)s
""" % dict(pki, www=www))
TCP, WS, WSS = b.port, b.ports["port2"], b.ports["port3"]


class Tcp:
    """A paho TCP client recording what it receives."""

    def __init__(self, name):
        self.got = []
        self.ev = threading.Event()
        self.c = mqtt.Client(name)
        self.c.on_message = lambda c, u, m: (self.got.append((m.topic, bytes(m.payload))),
                                             self.ev.set())
        self.c.connect("127.0.0.1", TCP)
        self.c.loop_start()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def read_line(proc, timeout):
    """The next stdout line of proc, or None after timeout."""
    out = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()))
    t.daemon = True
    t.start()
    t.join(timeout)
    return out[0].strip() if out and out[0] else None


def js_round_trip(what, cmd, prefix, env=ENV, timeout=20):
    """Starts a JS client; once READY, a TCP client publishes to
    PREFIX/in; the JS client must print it, a TCP subscriber must have
    heard PREFIX/out. Returns the JS client's JSON line (or None)."""
    listener = Tcp("tcp-" + prefix.replace("/", "-"))
    listener.c.subscribe(prefix + "/out", 1)
    time.sleep(0.3)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=JS)
    try:
        ready = read_line(proc, timeout)
        ok_ready = r.check("%s: connected, subscribed, published" % what, ready == "READY",
                           repr(ready))
        got = None
        if ok_ready:
            pub = Tcp("pub-" + prefix.replace("/", "-"))
            pub.c.publish(prefix + "/in", b"from-tcp", qos=1).wait_for_publish()
            line = read_line(proc, timeout)
            pub.close()
            try:
                got = json.loads(line) if line else None
            except ValueError:
                got = {"unparsed": line}
        listener.ev.wait(5)
        r.check("%s: a TCP subscriber heard its PUBLISH" % what,
                (prefix + "/out", b"from-node") in listener.got or
                (prefix + "/out", b"hello from the page") in listener.got, repr(listener.got))
        return got
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        err = proc.stderr.read()
        if proc.returncode != 0:
            print("  %s stderr: %s" % (what, err[-1500:]), flush=True)
        listener.close()


# ---- Node -----------------------------------------------------------------
for scheme, port, version in (("ws", WS, 4), ("ws", WS, 5), ("wss", WSS, 4), ("wss", WSS, 5)):
    what = "MQTT.js in Node over %s, MQTT %s" % (scheme, "3.1.1" if version == 4 else "5")
    env = dict(ENV, NODE_EXTRA_CA_CERTS=pki["ca"])
    prefix = "node/%s/%d" % (scheme, version)
    got = js_round_trip(what, [NODE, os.path.join(JS, "node_client.js"),
                               "%s://127.0.0.1:%d/mqtt" % (scheme, port), prefix, str(version)],
                        prefix, env)
    r.check("%s: received what a TCP client published" % what,
            got == {"topic": prefix + "/in", "payload": "from-tcp", "qos": 1}, repr(got))

# ---- http_dir -------------------------------------------------------------
head = wsraw.http_whole(WS, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").decode(errors="replace")
r.check("http_dir: / is index.html", head.startswith("HTTP/1.1 200") and
        "Content-Type: text/html" in head and "mqtt.connect" in head, head[:300])
head = wsraw.http_exchange(WS, b"GET /mqtt.min.js HTTP/1.1\r\nHost: h\r\n\r\n")
size = os.path.getsize(os.path.join(www, "mqtt.min.js"))
r.check("http_dir: a script with its type and length",
        head.startswith("HTTP/1.1 200") and "Content-Type: text/javascript" in head and
        "Content-Length: %d\r\n" % size in head, head[:300])
body = wsraw.http_whole(WS, b"GET /mqtt.min.js HTTP/1.1\r\nHost: h\r\n\r\n")
with open(os.path.join(www, "mqtt.min.js"), "rb") as f:
    r.check("http_dir: the whole file arrives, then the connection closes",
            body.endswith(f.read()), "%d bytes" % len(body))
head = wsraw.http_whole(WS, b"HEAD /sub/ HTTP/1.1\r\nHost: h\r\n\r\n").decode(errors="replace")
r.check("http_dir: HEAD of a directory's index, no body",
        head.startswith("HTTP/1.1 200") and head.endswith("\r\n\r\n") and "Content-Length: 10" in head,
        repr(head[-200:]))
for path in (b"/nope.html", b"/../secret.txt", b"/%2e%2e/secret.txt", b"/sub/../../secret.txt"):
    head = wsraw.http_exchange(WS, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    r.check("http_dir: %s is 404" % path.decode(), head.startswith("HTTP/1.1 404") and
            "outside" not in head, head[:200])

# ---- Chromium ---------------------------------------------------------------
if r.check("Debian's chromium is installed", os.access(CHROMIUM, os.X_OK), CHROMIUM):
    for scheme, port, extra in (("http", WS, None), ("https", WSS, "--ignore-certificate-errors")):
        what = "Chromium page over %s" % ("ws" if scheme == "http" else "wss")
        shot = os.path.join(BUILD, "tests", "ws-browser-%s.png" % scheme)
        os.makedirs(os.path.dirname(shot), exist_ok=True)
        if os.path.exists(shot):
            os.remove(shot)
        profile = tempfile.mkdtemp(prefix="midge-chromium-")
        cmd = [NODE, os.path.join(JS, "browser.js"), "%s://127.0.0.1:%d/index.html" % (scheme, port),
               shot, CHROMIUM, profile] + ([extra] if extra else [])
        got = js_round_trip(what, cmd, "browser", timeout=40)
        shutil.rmtree(profile, ignore_errors=True)
        r.check("%s: received the TCP client's message, no console error" % what,
                got is not None and got.get("received") == "browser/in from-tcp" and
                got.get("errors") == [], repr(got))
        r.check("%s: screenshot saved (%s)" % (what, shot),
                os.path.exists(shot) and open(shot, "rb").read(8) == b"\x89PNG\r\n\x1a\n")

log = b.log_text()
r.check("no refusal logged for the JS clients", "refused: WebSocket" not in log, log[-2000:])
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
shutil.rmtree(work, ignore_errors=True)
r.finish()
