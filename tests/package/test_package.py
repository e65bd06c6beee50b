"""The Debian packages, built and used as a user would: build_deb.sh makes
midge, libmidge0 and libmidge-dev from `make distdir` (two jobs, no tests
inside, timed); lintian finds no error; the packages hold what they should
(dpkg-deb -c); unpacked with dpkg-deb -x (no root install), the packaged
midge reports its libraries, validates the packaged midge.conf, tells a
fake service manager READY=1 only once it listens, RELOADING=1/READY=1 on
SIGHUP and STOPPING=1 on SIGTERM, and carries a QoS 1 message between
mosquitto_pub and mosquitto_sub; the packaged man pages render with man -l
without a warning; a program built with `pkg-config midge` against
libmidge-dev runs a broker; systemd-analyze verify accepts the unit.

Run by `./build.sh test` after `make check` (not by make check: it builds
the whole tree again). Environment: top_builddir (a configured build
tree), MIDGE_DEB_DIR (default $top_builddir/deb)."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import brokerctl  # noqa: E402
from brokerctl import run, kill  # noqa: E402

r = brokerctl.Results("package")
brokerctl.deadline(r, 1500)
top_src = os.path.abspath(os.path.join(here, "..", ".."))
builddir = brokerctl.builddir()
out = os.environ.get("MIDGE_DEB_DIR") or os.path.join(builddir, "deb")

# --- build -----------------------------------------------------------------
t0 = time.monotonic()
rc, so, se = run([os.path.join(here, "build_deb.sh"), builddir, out], timeout=1200)
build_s = time.monotonic() - t0
print(so + se)
print("package build: %.0f s wall (loaded machine)" % build_s)
r.check("dpkg-buildpackage -b -us -uc builds", rc == 0, (so + se)[-2000:])
debs = {}
for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
    m = re.match(r"([a-z0-9-]+?)_([^_]+)_([^_.]+)\.deb$", name)
    if m:
        debs[m.group(1)] = os.path.join(out, name)
r.check("midge, libmidge0 and libmidge-dev .debs", {"midge", "libmidge0", "libmidge-dev"} <= set(debs),
        repr(sorted(debs)))
if not {"midge", "libmidge0", "libmidge-dev"} <= set(debs):
    r.finish()


def listing(deb):
    _, text, _ = run(["dpkg-deb", "-c", deb])
    return text


# --- contents ----------------------------------------------------------------
want = {
    "midge": ["./usr/sbin/midge", "./etc/midge/midge.conf", "./lib/systemd/system/midge.service",
              "./usr/share/man/man8/midge.8.gz", "./usr/share/man/man5/midge.conf.5.gz",
              "./usr/share/doc/midge/migrating-from-mosquitto.md.gz"],
    "libmidge0": ["/libmidge.so.0"],
    "libmidge-dev": ["./usr/include/midge.h", "/libmidge.so", "/pkgconfig/midge.pc"],
}
for pkg, paths in want.items():
    text = listing(debs[pkg])
    print("$ dpkg-deb -c %s\n%s" % (os.path.basename(debs[pkg]), text))
    names = [line.split()[-1] if " -> " not in line else line.split(" -> ")[0].split()[-1]
             for line in text.splitlines() if line.strip()]
    missing = [p for p in paths if not any(n == p or (p.startswith("/") and n.endswith(p)) for n in names)]
    r.check("%s holds %s" % (pkg, ", ".join(os.path.basename(p) for p in paths)), not missing, repr(missing))
_, info, _ = run(["dpkg-deb", "-f", debs["midge"], "Depends"])
r.check("midge depends on adduser, libuv, GnuTLS, ZeroMQ, libsystemd",
        all(d in info for d in ("adduser", "libuv1", "libgnutls30", "libzmq5", "libsystemd0")), info)
_, conffiles, _ = run(["sh", "-c", "dpkg-deb --ctrl-tarfile '%s' | tar -xOf - ./conffiles" % debs["midge"]])
r.check("/etc/midge/midge.conf is a conffile", "/etc/midge/midge.conf" in conffiles, conffiles)
_, postinst, _ = run(["sh", "-c", "dpkg-deb --ctrl-tarfile '%s' | tar -xOf - ./postinst" % debs["midge"]])
r.check("postinst creates the user midge before enabling and starting the unit",
        "adduser --system" in postinst and "deb-systemd-helper" in postinst and
        postinst.index("adduser") < postinst.index("deb-systemd-helper") and
        "deb-systemd-invoke" in postinst, postinst[:1500])

# --- lintian -------------------------------------------------------------------
if shutil.which("lintian"):
    changes = [os.path.join(out, n) for n in os.listdir(out) if n.endswith(".changes")]
    t = time.monotonic()
    rc, so, se = run(["lintian", "--tag-display-limit", "0"] + changes, timeout=600)
    print("$ lintian (%.0f s)\n%s%s" % (time.monotonic() - t, so, se))
    errors = [line for line in so.splitlines() if line.startswith("E:")]
    r.check("lintian: no error", changes and not errors and "error" not in se.lower(), "\n".join(errors) + se)
else:
    r.check("lintian installed (build.sh deps installs it)", False)

# --- unpack --------------------------------------------------------------------
root = os.path.join(out, "root")
shutil.rmtree(root, ignore_errors=True)
os.makedirs(root)
for deb in debs.values():
    run(["dpkg-deb", "-x", deb, root])
midge = os.path.join(root, "usr", "sbin", "midge")
libdir = os.path.dirname(next(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                              if f.startswith("libmidge.so.0")))
env = dict(os.environ, LD_LIBRARY_PATH=libdir)

rc, so, se = run([midge, "--version"])
print("$ midge --version\n" + so)
r.check("packaged midge --version names libuv, GnuTLS, ZeroMQ and libsystemd",
        rc == 0 and all(re.search(r"^%s \d" % n, so, re.M) for n in ("midge", "libuv", "GnuTLS", "ZeroMQ",
                                                                       "libsystemd")), so + se)
conf = os.path.join(root, "etc", "midge", "midge.conf")
rc, so, se = run([midge, "--test-config", "-c", conf])
r.check("packaged midge.conf passes --test-config", rc == 0 and "is valid" in so, so + se)

# The packaged example as the service reads it, on a free loopback port.
port = brokerctl.free_port()
tmp = os.path.join(out, "run")
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
text = open(conf).read()
r.check("packaged midge.conf listens on localhost only", re.search(r"^listener 1883 localhost$", text, re.M) and
        len(re.findall(r"^listener ", text, re.M)) == 1, text[:400])
text = re.sub(r"^listener 1883 localhost$", "listener %d 127.0.0.1" % port, text, flags=re.M)
run_conf = os.path.join(tmp, "midge.conf")
with open(run_conf, "w") as f:
    f.write(text + "\nmidge_hooks_endpoint none\n")

# A short path: sun_path holds 108 bytes, a CI checkout's path may be long.
sockdir = tempfile.mkdtemp(prefix="midge-pkg-")
notify_path = os.path.join(sockdir, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(notify_path)
ns.settimeout(10)
p = subprocess.Popen([midge, "-c", run_conf], env=dict(env, NOTIFY_SOCKET=notify_path),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def recv():
    try:
        return ns.recv(4096).decode()
    except OSError:
        return ""


first = recv()
listening = False
if first:
    with socket.socket() as c:
        listening = c.connect_ex(("127.0.0.1", port)) == 0
r.check("packaged midge: READY=1 once the listener accepts", first.startswith("READY=1") and listening,
        repr((first, listening)))
sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "pkg/#", "-q", "1",
                        "-C", "1", "-W", "10", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(0.5)
rc, _, se = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "pkg/hello", "-q", "1",
                 "-m", "from the package"])
try:
    so, se2 = sub.communicate(timeout=12)
except subprocess.TimeoutExpired:
    kill(sub)
    so, se2 = "", "timeout"
r.check("packaged midge carries a QoS 1 message mosquitto_pub -> mosquitto_sub",
        rc == 0 and so.strip() == "pkg/hello from the package", repr((rc, so, se, se2)))
p.send_signal(signal.SIGHUP)
got = [recv(), recv()]
r.check("packaged midge: SIGHUP -> RELOADING=1 then READY=1",
        got[0].startswith("RELOADING=1") and got[1].startswith("READY=1"), repr(got))
p.send_signal(signal.SIGTERM)
stopping = ""
for _ in range(5):
    m = recv()
    if m.startswith("STOPPING=1") or not m:
        stopping = m
        break
try:
    p.wait(timeout=10)
except subprocess.TimeoutExpired:
    kill(p)
err = p.stderr.read()
r.check("packaged midge: SIGTERM -> STOPPING=1, exit 0", stopping.startswith("STOPPING=1") and p.returncode == 0,
        repr((stopping, p.returncode, err[-600:])))
ns.close()
shutil.rmtree(sockdir, ignore_errors=True)

# --- man pages -----------------------------------------------------------------
for page, title, name in (("man8/midge.8.gz", "MIDGE(8)", "midge - an MQTT"),
                          ("man5/midge.conf.5.gz", "MIDGE.CONF(5)", "midge.conf - the configuration")):
    path = os.path.join(root, "usr", "share", "man", page)
    rc, so, se = run(["man", "--warnings", "-l", path], env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    print("$ man -l %s | head -n 12\n%s" % (page, "\n".join(so.splitlines()[:12])))
    r.check("man -l %s renders without warnings" % os.path.basename(page),
            rc == 0 and so.startswith(title) and name in so and not se.strip(), se[:600])

# --- libmidge-dev: a program built with pkg-config midge ------------------------
pcdir = os.path.join(libdir, "pkgconfig")
pc_env = dict(env, PKG_CONFIG_PATH=pcdir, PKG_CONFIG_SYSROOT_DIR=root)
rc1, cflags, e1 = run(["pkg-config", "--cflags", "midge"], env=pc_env)
rc2, libs, e2 = run(["pkg-config", "--libs", "midge"], env=pc_env)
exe = os.path.join(tmp, "embed")
rc3, so, se = run(["sh", "-c", "cc -o '%s' '%s' %s %s" % (exe, os.path.join(top_src, "examples", "embed.c"),
                                                          cflags.strip(), libs.strip())], env=pc_env, timeout=120)
r.check("examples/embed.c builds with pkg-config midge against libmidge-dev",
        rc1 == rc2 == rc3 == 0 and root in cflags, repr((cflags, libs, e1, e2, se[-800:])))
if rc3 == 0:
    _, ldd, _ = run(["ldd", exe], env=env)
    port = brokerctl.free_port()
    e = subprocess.Popen([exe, str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    up = brokerctl.wait_port(port, proc=e)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "pong/#", "-C", "1",
                            "-W", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "ping/pkg", "-m", "x"])
    try:
        so, _ = sub.communicate(timeout=12)
    except subprocess.TimeoutExpired:
        kill(sub)
        so = ""
    kill(e)
    r.check("the program runs on the packaged libmidge.so.0 and answers ping/pkg",
            up and root in ldd and so.strip() != "", repr((up, ldd[:300], so)))

# --- the unit ------------------------------------------------------------------
unit = os.path.join(root, "lib", "systemd", "system", "midge.service")
text = open(unit).read() if os.path.exists(unit) else ""
r.check("unit: Type=notify, watchdog, user midge, sandboxed, reload by SIGHUP",
        all(re.search("^%s$" % re.escape(k), text, re.M) for k in (
            "Type=notify", "WatchdogSec=30s", "User=midge", "ExecStart=/usr/sbin/midge -c /etc/midge/midge.conf",
            "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
            "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "StateDirectory=midge",
            "RuntimeDirectory=midge")), text)
if shutil.which("systemd-analyze"):
    # verify checks that ExecStart exists: point it at the unpacked binary.
    copy = os.path.join(tmp, "midge.service")
    with open(copy, "w") as f:
        f.write(text.replace("/usr/sbin/midge", midge))
    rc, so, se = run(["systemd-analyze", "verify", "--man=no", copy], timeout=60)
    r.check("systemd-analyze verify: no complaint", rc == 0 and not (so + se).strip(), so + se)
    rc, so, se = run(["systemd-analyze", "security", "--offline=true", copy], timeout=60)
    print("$ systemd-analyze security --offline=true midge.service | tail -n 1\n" + (so + se).strip().splitlines()[-1]
          if (so + se).strip() else "")
else:
    print("systemd-analyze not installed: unit not verified")

print("package build: %.0f s wall (loaded machine)" % build_s)
r.finish()
