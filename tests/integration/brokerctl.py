"""brokerctl - start and stop a real broker for integration tests.

    import brokerctl
    b = brokerctl.start()                     # midge on a free 127.0.0.1 port
    b = brokerctl.start("listener {port} 127.0.0.1\\nmax_connections 5\\n")
    b.port, b.pid, b.ports["port2"], b.log_text(), b.stop()

start(config_text_or_None, extra_args=(), ...) writes the configuration to
a temporary file and runs the broker with -c on it, then waits until the
first listener accepts TCP connections.

- config None: "listener {port} 127.0.0.1" and "allow_anonymous true".
- In config text, {port}, {port2}, {port3} are replaced by free ports
  (plain str.replace, so other braces are safe) and {dir} by a private
  temporary directory. Text without any "listener" or "port" line gets
  "listener {port} 127.0.0.1" in front.
- "allow_anonymous true" is added unless the text mentions allow_anonymous
  (Mosquitto 2 refuses anonymous clients when a file defines listeners).
- "midge_hooks_endpoint none" is added unless the text mentions
  midge_hooks_endpoint, so brokers of parallel tests do not fight over the
  default event endpoint.
- "midge_io_threads $MIDGE_IO_THREADS" is added when that variable is set
  and the text does not choose: the same tests run the sockets inline
  (0) and on I/O threads.

The broker is the build's midge ($top_builddir/midge) unless MIDGE_BROKER
is "mosquitto" (then /usr/sbin/mosquitto, with midge_* lines removed): the
tests can prove themselves against the reference broker.

Results() collects checks and prints "N passed, M failed" last; deadline()
bounds a whole test in time and stops every broker it started.
"""

import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

_started = []

# Under a sanitizer (MIDGE_SANITIZER, set by build.sh for its TSan run) the
# broker runs several times slower: time bounds of tests that measure
# responsiveness are multiplied by this.
TIME_SCALE = 4 if os.environ.get("MIDGE_SANITIZER") else 1


def broker_kind():
    return "mosquitto" if os.environ.get("MIDGE_BROKER") == "mosquitto" else "midge"


def midge_binary():
    top = os.environ.get("top_builddir")
    if not top:
        here = os.path.dirname(os.path.abspath(__file__))
        top = os.path.join(here, "..", "..", "build")
    return os.path.join(top, "midge")


def builddir():
    return os.path.dirname(midge_binary())


def free_port():
    """A TCP port nobody listens on right now on 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    def __init__(self, proc, port, ports, tmpdir, log_path, conf_path):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.ports = ports
        self.dir = tmpdir
        self.log_path = log_path
        self.conf_path = conf_path

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self in _started:
            _started.remove(self)
        rc = self.proc.returncode
        if os.environ.get("MIDGE_KEEP_LOGS") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def _raise_nofile(n):
    def fn():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(n, hard) if hard != resource.RLIM_INFINITY else n
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return fn


def start(config=None, extra_args=(), nofile=None, wait_for="port", env=None):
    """Starts a broker; see the module docstring. Raises RuntimeError with
    the broker's log if it does not come up within 10 s."""
    tmpdir = tempfile.mkdtemp(prefix="midge-it-")
    ports = {"port": free_port(), "port2": free_port(), "port3": free_port()}
    if config is None:
        config = "listener {port} 127.0.0.1\n"
    text = config
    if "listener" not in text and not any(
            l.strip().startswith("port ") for l in text.splitlines()):
        text = "listener {port} 127.0.0.1\n" + text
    if "allow_anonymous" not in text:
        text += "\nallow_anonymous true\n"
    if "midge_hooks_endpoint" not in text:
        text += "\nmidge_hooks_endpoint none\n"
    if "midge_io_threads" not in text and os.environ.get("MIDGE_IO_THREADS"):
        text += "\nmidge_io_threads %s\n" % os.environ["MIDGE_IO_THREADS"]
    for k, v in ports.items():
        text = text.replace("{" + k + "}", str(v))
    text = text.replace("{dir}", tmpdir)
    kind = broker_kind()
    if kind == "mosquitto":
        text = "\n".join(l for l in text.splitlines()
                         if not l.strip().startswith("midge_")) + "\n"
    conf_path = os.path.join(tmpdir, "broker.conf")
    with open(conf_path, "w") as f:
        f.write(text)
    log_path = os.path.join(tmpdir, "broker.log")
    if kind == "mosquitto":
        cmd = ["/usr/sbin/mosquitto", "-c", conf_path] + list(extra_args)
    else:
        cmd = [midge_binary(), "-c", conf_path] + list(extra_args)
    logf = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_raise_nofile(nofile) if nofile else None)
    logf.close()
    # The first listener's port is the one tests talk to.
    first = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("listener", "port"):
            first = int(parts[1])
            break
    b = Broker(proc, first, ports, tmpdir, log_path, conf_path)
    _started.append(b)
    if wait_for == "port" and not wait_port(first, proc=proc):
        log = b.log_text()
        b.stop()
        raise RuntimeError("broker did not start: %s\n%s" % (" ".join(cmd), log))
    return b


def scratch_dir(tag):
    """A private temporary directory (0755, so a broker that drops
    privileges can read what is put there); the caller removes it."""
    d = tempfile.mkdtemp(prefix="midge-it-%s-" % tag)
    os.chmod(d, 0o755)
    return d


def start_reference(config, **kw):
    """start() with Mosquitto (/usr/sbin/mosquitto) whatever MIDGE_BROKER
    says: a test that compares midge with it."""
    saved = os.environ.get("MIDGE_BROKER")
    os.environ["MIDGE_BROKER"] = "mosquitto"
    try:
        return start(config, **kw)
    finally:
        if saved is None:
            del os.environ["MIDGE_BROKER"]
        else:
            os.environ["MIDGE_BROKER"] = saved


def stop_all():
    for b in list(_started):
        try:
            b.stop()
        except Exception:
            pass


class Results:
    """Counts checks; finish() prints "N passed, M failed" and exits."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s" % what, flush=True)
        else:
            self.failed += 1
            print("FAIL %s %s" % (what, detail), flush=True)
        return ok

    def check_memory(self, what, ok, detail=""):
        """A bound on the broker's memory or CPU time: under a sanitizer
        (MIDGE_SANITIZER set by build.sh) its shadow memory and
        instrumentation make the figure meaningless, so the bound is only
        reported there (the plain build's run checks it)."""
        if os.environ.get("MIDGE_SANITIZER"):
            print("note %s (not checked under %s) %s" % (what, os.environ["MIDGE_SANITIZER"],
                                                        detail), flush=True)
            return True
        return self.check(what, ok, detail)

    check_cost = check_memory

    def finish(self):
        stop_all()
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed or self.passed == 0 else 0)


def deadline(results, seconds):
    """Fails the test and stops every broker if it runs longer than
    seconds."""
    def on_alarm(signum, frame):
        results.check("finished within %d s" % seconds, False)
        results.finish()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)


def run(cmd, timeout=10, **kw):
    """Runs a client command; returns (returncode, stdout, stderr)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"


def spawn(cmd, **kw):
    """Starts a client process in the background (stop it with kill())."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, **kw)


def kill(proc, timeout=5):
    """Stops a background client by PID; returns (stdout, stderr)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=timeout)
    return out, err


def publish_properties(user, **fields):
    """paho-mqtt MQTT 5 PUBLISH properties: the user properties in the
    given order, and each keyword as the property of that name."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = list(user)
    for name, value in fields.items():
        setattr(props, name, value)
    return props


# ---- raw MQTT 3.1.1 packets, for tests that misbehave on purpose ----------

def varint(n):
    """MQTT variable byte integer [MQTT-1.5.5]."""
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def varint_decode(buf, i, most=None):
    """(value, index after it) of the variable byte integer [MQTT-1.5.5]
    at buf[i], or None when buf ends first or it runs over `most` bytes."""
    value, mult = 0, 1
    end = len(buf) if most is None else min(len(buf), i + most)
    for j in range(i, end):
        value += (buf[j] & 0x7F) * mult
        mult *= 128
        if not buf[j] & 0x80:
            return value, j + 1
    return None


def split_packets(data):
    """[(first byte, body)] of a byte stream; a torn last packet is left out."""
    out, i = [], 0
    while i + 1 < len(data):
        got = varint_decode(data, i + 1)
        if got is None or got[1] + got[0] > len(data):
            break
        length, j = got
        out.append((data[i], data[j:j + length]))
        i = j + length
    return out


def start_fd_limited(limit, config):
    """Starts a broker whose soft RLIMIT_NOFILE is limit: it inherits the
    limit at fork, so this process has it lowered around the start only."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        return start(config)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _s(b):
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id, keepalive=60, clean=True, username=None, password=None, v5=False):
    """CONNECT, 3.1.1 or (v5=True) 5.0 without properties; username and
    password are str or bytes."""
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | \
        (0x40 if password is not None else 0)
    body = _s(b"MQTT") + bytes([5 if v5 else 4, flags]) + keepalive.to_bytes(2, "big") + \
        (b"\x00" if v5 else b"") + _s(client_id.encode())
    for field in (username, password):
        if field is not None:
            body += _s(field.encode() if isinstance(field, str) else field)
    return bytes([0x10]) + varint(len(body)) + body


def subscribe_packet(packet_id, topic, qos=0):
    body = packet_id.to_bytes(2, "big") + _s(topic.encode()) + bytes([qos])
    return bytes([0x82]) + varint(len(body)) + body


def publish_packet(topic, payload, qos=0, packet_id=1, retain=False):
    body = _s(topic.encode()) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + varint(len(body)) + body


PROXY_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(cmd, fam, rest):
    """A PROXY protocol v2 header (HAProxy's): command, family, the rest."""
    return PROXY_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(rest)) + rest


def proxy_v2_inet(src, sport, tlvs=b""):
    """PROXY v2 for a TCP/IPv4 client src:sport (to 127.0.0.1:1883), with tlvs."""
    return proxy_v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton("127.0.0.1") +
                    struct.pack("!HH", sport, 1883) + tlvs)


def proxy_ssl_tlv(cn=None, verified=True):
    """PP2_TYPE_SSL: the client used TLS 1.3, with a certificate the proxy
    verified (or not), and its common name when given."""
    sub = b"\x21\x00\x07TLSv1.3"
    if cn:
        sub += b"\x22" + struct.pack("!H", len(cn.encode())) + cn.encode()
    body = bytes([0x07 if verified else 0x01]) + struct.pack("!I", 0 if verified else 1) + sub
    return b"\x20" + struct.pack("!H", len(body)) + body


def read_packet(sock, timeout=5.0):
    """(first byte, body) of the next packet, or None on EOF / timeout."""
    sock.settimeout(timeout)
    try:
        def need(n):
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise EOFError
                buf += chunk
            return buf
        first = need(1)[0]
        mult, length = 1, 0
        for _ in range(4):
            d = need(1)[0]
            length += (d & 0x7F) * mult
            mult *= 128
            if not d & 0x80:
                break
        return first, need(length) if length else b""
    except (EOFError, OSError):
        return None


def rss_kib(pid):
    """Resident memory of a process in KiB (Linux), or -1."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1
