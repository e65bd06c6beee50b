"""What a user installs and checks before running: `midge --version`
reports the versions of the libraries actually loaded (compared with what
those libraries say through ctypes); `midge --test-config -c FILE` exits 0
on a valid file and 1 with file:line on a bad key, and 1 naming the file
for a missing certificate, password file or user, binding nothing; `make
install DESTDIR=...` puts midge in sbin, libmidge, midge.h and midge.pc,
the man pages, midge.service (paths expanded, Type= as built) and the
example midge.conf in sysconfdir; the example passes --test-config, also
with every commented-out setting turned on; a program builds with
`pkg-config midge` against the installed tree; the man pages render with
man -l without warnings."""

import ctypes
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run  # noqa: E402

r = brokerctl.Results("install")
brokerctl.deadline(r, 240)
if brokerctl.broker_kind() == "mosquitto":
    print("midge's own command line and install tree; nothing to compare with Mosquitto here")
    r.check("skipped for Mosquitto", True)
    r.finish()

midge = brokerctl.midge_binary()
builddir = brokerctl.builddir()
srcdir = os.environ.get("top_srcdir") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
tmp = tempfile.mkdtemp(prefix="midge-install-")


def write(name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    return p


# --- --version: the loaded libraries' own answers -----------------------------
rc, out, err = run([midge, "--version"])
print(out)
uv = ctypes.CDLL("libuv.so.1")
uv.uv_version_string.restype = ctypes.c_char_p
gnutls = ctypes.CDLL("libgnutls.so.30")
gnutls.gnutls_check_version.restype = ctypes.c_char_p
gnutls.gnutls_check_version.argtypes = [ctypes.c_char_p]
zmq = ctypes.CDLL("libzmq.so.5")
z = [ctypes.c_int(), ctypes.c_int(), ctypes.c_int()]
zmq.zmq_version(*[ctypes.byref(x) for x in z])
sqlite = ctypes.CDLL("libsqlite3.so.0")
sqlite.sqlite3_libversion.restype = ctypes.c_char_p
mhd = ctypes.CDLL("libmicrohttpd.so.12")
mhd.MHD_get_version.restype = ctypes.c_char_p
jansson = ctypes.CDLL("libjansson.so.4")
jansson.jansson_version_str.restype = ctypes.c_char_p
expect = ["midge %s" % open(os.path.join(builddir, "Makefile")).read().split("PACKAGE_VERSION = ")[1].split()[0],
          "libuv %s" % uv.uv_version_string().decode(),
          "GnuTLS %s" % gnutls.gnutls_check_version(None).decode(),
          "ZeroMQ %d.%d.%d" % tuple(x.value for x in z),
          "SQLite %s" % sqlite.sqlite3_libversion().decode(),
          "libmicrohttpd %s" % mhd.MHD_get_version().decode(),
          "jansson %s" % jansson.jansson_version_str().decode()]
lines = out.splitlines()
r.check("--version: midge, then libuv, GnuTLS, ZeroMQ, SQLite, libmicrohttpd, jansson as loaded",
        rc == 0 and lines[:7] == expect, repr((lines, expect)))
r.check("--version says whether libsystemd is compiled in",
        len(lines) >= 5 and re.match(r"libsystemd (\d+ \(sd_notify|no )", lines[-1]), repr(lines))

# --- --test-config ---------------------------------------------------------------
port = brokerctl.free_port()
good = write("good.conf", "listener %d 127.0.0.1\nallow_anonymous true\nauto_id_prefix x-\n" % port)
rc, out, err = run([midge, "--test-config", "-c", good])
with socket.socket() as c:
    bound = c.connect_ex(("127.0.0.1", port)) == 0
r.check("--test-config: valid file exits 0, says so, binds nothing",
        rc == 0 and "%s is valid" % good in out and not bound, repr((rc, out, err)))
r.check("--test-config prints warnings for ignored Mosquitto keys", "auto_id_prefix" in err and ":3:" in err, err)
# a file it names that start-up would load: the realm's acl_file
badacl = write("badacl.conf", "listener %d 127.0.0.1\nallow_anonymous true\nacl_file /nonexistent/acl\n"
               % port)
rc, out, err = run([midge, "--test-config", "-c", badacl])
r.check("--test-config: an acl_file that cannot be read exits 1 naming it",
        rc == 1 and "acl_file /nonexistent/acl" in err, repr((rc, err)))
bad = write("bad.conf", "listener 1883\n# fine\nmax_qos 7\n")
rc, out, err = run([midge, "--test-config", "-c", bad])
r.check("--test-config: bad value exits 1 with file:line", rc == 1 and bad + ":3:" in err and "max_qos" in err and
        "not valid" in err, repr((rc, err)))
bad = write("bad2.conf", "listener 1883\nnot_a_key 1\n")
rc, out, err = run([midge, "--test-config", "-c", bad])
r.check("--test-config: unknown key exits 1 with file:line", rc == 1 and bad + ":2:" in err, repr((rc, err)))
files = write("files.conf", "listener 8883\ncertfile %s/none.pem\nkeyfile %s/none-key.pem\n"
              "password_file %s/no-passwd\nuser no-such-user-midge\nallow_anonymous true\n" % (tmp, tmp, tmp))
rc, out, err = run([midge, "--test-config", "-c", files])
r.check("--test-config loads certificates, the password file and checks the user",
        rc == 1 and "none.pem" in err and "no-passwd" in err and "no-such-user-midge" in err, repr((rc, err)))
rc, out, err = run([midge, "--test-config"])
r.check("--test-config without -c exits 1", rc == 1 and "-c" in err, repr((rc, err)))
rc, out, err = run([midge, "--test-config", "-c", os.path.join(tmp, "missing.conf")])
r.check("--test-config on a missing file exits 1 naming it", rc == 1 and "missing.conf" in err, repr((rc, err)))

# --- make install -----------------------------------------------------------------
dest = os.path.join(tmp, "dest")
# The configured prefix (midge.pc and midge.service carry it), under DESTDIR.
prefix = re.search(r"^prefix = (.*)$", open(os.path.join(builddir, "Makefile")).read(), re.M).group(1)
rc, out, err = run(["make", "-s", "-C", builddir, "install", "DESTDIR=" + dest], timeout=180)
r.check("make install DESTDIR=...", rc == 0, (out + err)[-1500:])
root = dest + prefix
libdir = os.path.join(root, "lib")
want = ["sbin/midge", "include/midge.h", "lib/pkgconfig/midge.pc", "share/man/man8/midge.8",
        "share/man/man5/midge.conf.5", "etc/midge/midge.conf", "lib/systemd/system/midge.service"]
missing = [w for w in want if not os.path.exists(os.path.join(root, w))]
r.check("installed: " + ", ".join(want), not missing, repr(missing))
r.check("installed: libmidge.so.0", any(f.startswith("libmidge.so.0") for f in os.listdir(libdir)),
        repr(os.listdir(libdir)))
r.check("midge is not in bin", not os.path.exists(os.path.join(root, "bin", "midge")))
same = open(os.path.join(root, "etc/midge/midge.conf")).read() == open(os.path.join(srcdir, "examples/midge.conf")).read()
r.check("sysconfdir/midge/midge.conf is the example", same)
# A second install leaves an administrator's file alone.
with open(os.path.join(root, "etc/midge/midge.conf"), "a") as f:
    f.write("# edited\n")
rc, out, err = run(["make", "-C", builddir, "install-data-hook", "DESTDIR=" + dest], timeout=60)
r.check("install does not overwrite an existing midge.conf",
        rc == 0 and open(os.path.join(root, "etc/midge/midge.conf")).read().endswith("# edited\n"), out + err)

unit = open(os.path.join(root, "lib/systemd/system/midge.service")).read()
built_type = "notify" if "libsystemd no" not in lines[-1] else "simple"
r.check("midge.service: paths expanded, Type=%s as built, WatchdogSec only with notify" % built_type,
        "ExecStart=%s/sbin/midge -c %s/etc/midge/midge.conf" % (prefix, prefix) in unit and
        "Type=%s\n" % built_type in unit and ("WatchdogSec=" in unit) == (built_type == "notify") and
        not re.search(r"@[a-zA-Z_]+@", unit), unit[:800])

# --- the example configuration -------------------------------------------------
example = os.path.join(srcdir, "examples", "midge.conf")
rc, out, err = run([midge, "--test-config", "-c", example])
r.check("examples/midge.conf passes --test-config with no warning", rc == 0 and "warning" not in err,
        repr((rc, out, err)))
# Every "#key value" line turned on, with files that exist, must load too:
# the example shows no key midge does not know.
pki = os.path.join(tmp, "pki")
os.makedirs(pki)
tpl = write("srv.tpl", 'cn = "localhost"\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 30\n')
run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", pki + "/server-key.pem"], timeout=30)
run(["certtool", "--generate-self-signed", "--load-privkey", pki + "/server-key.pem", "--template", tpl,
     "--outfile", pki + "/server.pem"], timeout=30)
shutil.copy(pki + "/server.pem", pki + "/ca.pem")
run(["mosquitto_passwd", "-c", "-b", os.path.join(tmp, "passwd"), "u", "p"])
text = open(example).read()
on = re.sub(r"^#([a-z_]+ .*)$", r"\1", text, flags=re.M)
on = on.replace("/etc/midge/certs", pki).replace("/etc/midge/passwd", os.path.join(tmp, "passwd"))
on = on.replace("/var/log/midge/midge.log", os.path.join(tmp, "midge.log"))
on = on.replace("/run/midge/", tmp + "/").replace("\nuser midge\n", "\n")
n_on = len(re.findall(r"^#[a-z_]+ ", text, re.M))
allon = write("all-on.conf", on)
rc, out, err = run([midge, "--test-config", "-c", allon])
r.check("examples/midge.conf with its %d commented settings on passes --test-config" % n_on,
        rc == 0 and n_on > 30 and "warning" not in err, repr((rc, err[-1500:])))

# --- pkg-config and the installed library --------------------------------------
env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=dest,
           LD_LIBRARY_PATH=libdir)
rc1, cflags, e1 = run(["pkg-config", "--cflags", "midge"], env=env)
rc2, libs, e2 = run(["pkg-config", "--libs", "midge"], env=env)
rc3, mv, _ = run(["pkg-config", "--modversion", "midge"], env=env)
exe = os.path.join(tmp, "embed")
rc4, out, err = run(["sh", "-c", "cc -o '%s' '%s' %s %s" % (exe, os.path.join(srcdir, "examples/embed.c"),
                                                            cflags.strip(), libs.strip())], env=env, timeout=120)
rc5, ldd, _ = run(["ldd", exe], env=env) if rc4 == 0 else (1, "", "")
r.check("a program builds with pkg-config midge and loads the installed libmidge.so.0",
        rc1 == rc2 == rc3 == rc4 == rc5 == 0 and lines[0].endswith(mv.strip()) and
        os.path.join(libdir, "libmidge.so.0") in ldd, repr((cflags, libs, e1, e2, err[-800:], ldd)))

# --- man pages ---------------------------------------------------------------------
for page, title in (("share/man/man8/midge.8", "MIDGE(8)"), ("share/man/man5/midge.conf.5", "MIDGE.CONF(5)")):
    rc, out, err = run(["man", "--warnings", "-l", os.path.join(root, page)], env=dict(os.environ, MANWIDTH="80"))
    r.check("man -l %s renders, no warnings" % os.path.basename(page),
            rc == 0 and out.startswith(title) and "SEE ALSO" in out and not err.strip(), err[:800])
conf5 = run(["man", "-l", os.path.join(root, "share/man/man5/midge.conf.5")], env=dict(os.environ, MANWIDTH="80"))[1]
keys = set(re.findall(r"^\| `([a-z_0-9.]+)[ `]", open(os.path.join(srcdir, "docs/configuration.md")).read(), re.M))
absent = [k for k in sorted(keys) if not re.search(r"^       %s\b" % re.escape(k), conf5, re.M)]
r.check("midge.conf(5) has each of the %d keys of docs/configuration.md as an entry" % len(keys),
        len(keys) > 40 and not absent, repr(absent))
rc, helptext, _ = run([midge, "-h"])
page8 = run(["man", "-l", os.path.join(root, "share/man/man8/midge.8")], env=dict(os.environ, MANWIDTH="80"))[1]
flags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", helptext.split("\n", 1)[1]))
undocumented = sorted(f for f in flags if f not in page8)
r.check("midge(8) documents every flag of midge -h", flags and not undocumented, repr(undocumented))

shutil.rmtree(tmp, ignore_errors=True)
r.finish()
