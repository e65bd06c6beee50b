"""Start and stop the broker under test for the hostile-client suite.

API (shared with tests/integration/brokerctl.py if it appears):
    b = start(config_text_or_None, extra_args=(), tls=False)
    b.port, b.tls_port, b.pid, b.stop(), b.log_text(), b.rss_kb(), b.alive()

The broker is chosen by MIDGE_HOSTILE_BROKER:
  midge (default)  $top_builddir/midge (or build/midge next to the tree)
  mosquitto        /usr/sbin/mosquitto with a generated config; keys that
                   start with midge_ are dropped (Mosquitto has no such
                   keys) and message_size_limit is mirrored into
                   max_packet_size, Mosquitto's name for the framing limit
  /path/to/binary  any binary that reads midge's configuration
MIDGE_HOSTILE_WRAPPER prefixes the command (for example
"valgrind --error-exitcode=99 --leak-check=full").

The config text holds broker-wide keys only; start() appends the
listeners (plain, and TLS when asked) on free loopback ports and
allow_anonymous true. Every broker is stopped by its PID.
"""

import os
import resource
import shlex
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(os.path.join(HERE, "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build")
MOSQUITTO = "/usr/sbin/mosquitto"


def kind():
    """'midge' or 'mosquitto': which configuration dialect to write."""
    b = os.environ.get("MIDGE_HOSTILE_BROKER", "midge")
    return "mosquitto" if b == "mosquitto" or b.endswith("/mosquitto") else "midge"


def binary():
    b = os.environ.get("MIDGE_HOSTILE_BROKER", "midge")
    if b == "midge":
        return os.path.join(TOP_BUILDDIR, "midge")
    if b == "mosquitto":
        return MOSQUITTO
    return b


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile():
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


_tls_files = None


def tls_files():
    """A self-signed certificate and key for 127.0.0.1, made once per run."""
    global _tls_files
    if _tls_files:
        return _tls_files
    d = tempfile.mkdtemp(prefix="midge-hostile-tls-")
    key = os.path.join(d, "key.pem")
    cert = os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    # Mosquitto started as root drops to the mosquitto user before it
    # reads the certificate: the throw-away test key must be readable.
    os.chmod(d, 0o755)
    os.chmod(key, 0o644)
    os.chmod(cert, 0o644)
    _tls_files = (cert, key)
    return _tls_files


class Broker:
    def __init__(self, proc, port, tls_port, workdir, log_path):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.tls_port = tls_port
        self.workdir = workdir
        self.log_path = log_path

    def alive(self):
        return self.proc.poll() is None

    def rss_kb(self):
        """Resident memory of the broker process (VmRSS), in KiB; 0 if gone."""
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def fd_count(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return 0

    def stop(self, timeout=10.0):
        """SIGTERM by PID, SIGKILL after timeout. Returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def _config(config_text, port, tls_port):
    k = kind()
    lines = []
    for line in (config_text or "").splitlines():
        key = line.strip().split(" ", 1)[0] if line.strip() else ""
        if k == "mosquitto" and key.startswith("midge_"):
            continue
        lines.append(line)
        if k == "mosquitto" and key == "message_size_limit":
            # Mosquitto's framing limit is max_packet_size; message_size_limit
            # only bounds payloads after the whole packet was read.
            lines.append("max_packet_size %d" % (int(line.split()[1]) + 1024))
    lines.append("allow_anonymous true")
    lines.append("listener %d 127.0.0.1" % port)
    if tls_port:
        cert, key = tls_files()
        lines.append("listener %d 127.0.0.1" % tls_port)
        lines.append("certfile %s" % cert)
        lines.append("keyfile %s" % key)
    return "\n".join(lines) + "\n"


def _nofile_preexec():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(config_text=None, extra_args=(), tls=False, ready_timeout=None):
    """Start the broker on free loopback ports; returns a Broker once the
    plain listener accepts connections. Raises RuntimeError otherwise."""
    workdir = tempfile.mkdtemp(prefix="midge-hostile-")
    port = free_port()
    tls_port = free_port() if tls else None
    conf = os.path.join(workdir, "broker.conf")
    with open(conf, "w") as f:
        f.write(_config(config_text, port, tls_port))
    log_path = os.path.join(workdir, "broker.log")
    wrapper = shlex.split(os.environ.get("MIDGE_HOSTILE_WRAPPER", ""))
    cmd = wrapper + [binary(), "-c", conf] + list(extra_args)
    if not os.path.exists(cmd[len(wrapper)]):
        raise RuntimeError("broker binary not found: %s" % cmd[len(wrapper)])
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=workdir, preexec_fn=_nofile_preexec)
    log.close()
    b = Broker(proc, port, tls_port, workdir, log_path)
    if ready_timeout is None:
        ready_timeout = 60.0 if wrapper else 10.0
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("broker exited with %s at start:\n%s" % (proc.returncode, b.log_text()))
        ok = True
        for p in [port] + ([tls_port] if tls_port else []):
            try:
                socket.create_connection(("127.0.0.1", p), timeout=1).close()
            except OSError:
                ok = False
        if ok:
            return b
        time.sleep(0.05)
    b.stop()
    raise RuntimeError("broker did not listen within %.0fs:\n%s" % (ready_timeout, b.log_text()))
