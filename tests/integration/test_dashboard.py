#!/usr/bin/python3
"""test_dashboard.py - midge's dashboard in headless Chromium.

Starts midge with the HTTP server (an admin in a password file), a paho
MQTT 5 client to be kicked, a subscriber and a publisher that keeps
publishing, then runs tests/dashboard/dashboard.test.mjs (puppeteer-core
driving Debian's chromium): the page loads without console errors, its
rate chart moves, the clients table shows the test's client, the kick
button disconnects it, and the paho client sees DISCONNECT 0x98.
Screenshots are kept in $top_builddir/test-artifacts/dashboard/.

Needs node and tests/dashboard/node_modules (installed here with `npm ci`
from the committed lockfile when missing). Prints "N passed, M failed".
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

R = brokerctl.Results("dashboard")
brokerctl.deadline(R, 50 + 120 * brokerctl.TIME_SCALE + int(os.environ.get("MIDGE_SHOT_WAIT_MS", "0")) // 1000)
TOP_SRCDIR = os.path.abspath(httpctl.TOP_SRCDIR)
TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build"))
DASH = os.path.join(TOP_SRCDIR, "tests", "dashboard")
ARTIFACTS = os.path.join(TOP_BUILDDIR, "test-artifacts", "dashboard")


def node_dir():
    """A directory with the test script and its npm packages: the source
    tree's tests/dashboard when `npm ci` was run there (build.sh does), else
    a copy in the build tree where `npm ci` installs them from the
    committed lockfile (a read-only source tree, as in make distcheck)."""
    if os.path.isdir(os.path.join(DASH, "node_modules", "puppeteer-core")):
        return DASH
    work = os.path.join(TOP_BUILDDIR, "test-dashboard")
    os.makedirs(work, exist_ok=True)
    for f in ("package.json", "package-lock.json", "dashboard.test.mjs"):
        shutil.copyfile(os.path.join(DASH, f), os.path.join(work, f))
    if os.path.isdir(os.path.join(work, "node_modules", "puppeteer-core")):
        return work
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        return None
    return work


def client(cid, version=mqtt.MQTTv5):
    c = mqtt.Client(client_id=cid, protocol=version)  # paho-mqtt 1.6 (Debian)
    c.disconnects = []
    c.on_disconnect = lambda cl, ud, rc, props=None: c.disconnects.append(rc)
    return c


def main():
    R.check("chromium installed", shutil.which("chromium") is not None, "apt-get install chromium")
    R.check("node installed", shutil.which("node") is not None, "apt-get install nodejs")
    where = node_dir()
    if not R.check("npm packages (tests/dashboard/package-lock.json)", where is not None):
        return
    b = httpctl.start("midge_http_password_file {files}/passwd\nmidge_http_admin admin\n",
                      users={"admin": "s3cret-admin", "viewer": "viewer-pw"})
    victim = client("dash-victim")
    victim.connect("127.0.0.1", b.port)
    victim.loop_start()
    sub = client("dash-sub")
    sub.connect("127.0.0.1", b.port)
    sub.subscribe("load/#")
    sub.loop_start()
    pub = client("dash-pub")
    pub.connect("127.0.0.1", b.port)
    pub.loop_start()
    stop = threading.Event()

    def publish():
        n = 0
        while not stop.is_set():
            pub.publish("load/%d" % (n % 7), b"x" * 32, qos=0)
            n += 1
            time.sleep(0.002)
    t = threading.Thread(target=publish, daemon=True)
    t.start()
    time.sleep(0.5)
    env = dict(os.environ, MIDGE_URL="http://127.0.0.1:%d/" % b.http_port, MIDGE_USER="admin",
               MIDGE_PASS="s3cret-admin", MIDGE_VICTIM="dash-victim", MIDGE_ARTIFACTS=ARTIFACTS,
               MIDGE_TIME_SCALE=str(brokerctl.TIME_SCALE))
    try:
        p = subprocess.run(["node", os.path.join(where, "dashboard.test.mjs")], cwd=where, env=env,
                           capture_output=True, text=True,
                           timeout=120 * brokerctl.TIME_SCALE
                           + int(os.environ.get("MIDGE_SHOT_WAIT_MS", "0")) // 1000)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        R.check("browser run within %d s" % (120 * brokerctl.TIME_SCALE), False)
    stop.set()
    t.join(5)
    results = None
    for line in out.splitlines():
        if line.startswith("{"):
            results = json.loads(line)["results"]
    if not R.check("browser test reported", results is not None, out[-2000:]):
        print(p.stderr[-3000:] if 'p' in dir() else "")
        return
    for r in results:
        R.check("browser: " + r["name"], r["ok"], r["why"][:1500])
    deadline = time.time() + 5 * brokerctl.TIME_SCALE
    while not victim.disconnects and time.time() < deadline:
        time.sleep(0.1)
    rc = victim.disconnects[0] if victim.disconnects else None
    R.check("the kicked paho client got DISCONNECT 0x98 (administrative action)",
            rc is not None and getattr(rc, "value", rc) == 0x98, repr(rc))
    R.check("screenshots kept", all(os.path.exists(os.path.join(ARTIFACTS, n)) for n in
                                    ("dashboard-overview.png", "dashboard-clients.png",
                                     "dashboard-events.png")), ARTIFACTS)
    for c in (victim, sub, pub):
        c.loop_stop()
    b.stop()


try:
    main()
except Exception as e:  # a crash of the test is a failure, never a skip
    import traceback
    traceback.print_exc()
    R.check("test ran", False, repr(e))
R.finish()
