"""wsraw - a raw WebSocket client for tests that misbehave on purpose:
hand-written upgrade requests, frames masked or not, of any opcode and
length, and a reader of what the broker answers (HTTP, frames, EOF).

    s = wsraw.connect(port)                       # upgraded, or raises
    s.send_frame(0x2, data)                       # masked binary frame
    op, payload = s.read_frame()                  # None on EOF / timeout
    head = wsraw.http_exchange(port, request)     # the HTTP answer text
"""

import base64
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def upgrade_request(path="/mqtt", key=None, version="13", protocols="mqtt", extra=""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key != "":
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    if protocols:
        lines.append("Sec-WebSocket-Protocol: %s" % protocols)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def read_http(sock, timeout=5.0):
    """The answer's head (and what followed it) as text, "" on EOF first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data.decode(errors="replace")


def http_whole(port, request, timeout=5.0):
    """The whole answer, head and body, read until the broker closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    try:
        s.sendall(request)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        s.close()
    return data


def http_exchange(port, request, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        return read_http(s, timeout)
    finally:
        s.close()


def closed_within(sock, seconds):
    """True when the broker ends the connection (EOF or reset) within
    seconds; what arrives meanwhile is read and dropped."""
    end = time.time() + seconds
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def frame(opcode, payload, mask=True, fin=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class Conn:
    def __init__(self, sock, rest=b""):
        self.sock = sock
        self.buf = rest

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload, **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def _need(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=5.0):
        """(opcode, payload) of the broker's next frame (unmasked, as a
        server's must be; a masked one raises), or None on EOF/timeout."""
        try:
            b0, b1 = self._need(2, timeout)
            if b1 & 0x80:
                raise ValueError("masked frame from the server")
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._need(2, timeout))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._need(8, timeout))[0]
            return b0 & 0x0F, self._need(n, timeout) if n else b""
        except (EOFError, OSError):
            return None

    def read_mqtt(self, timeout=5.0):
        """The next MQTT packet (first byte, body) carried by binary
        frames, whatever their boundaries; None on EOF or a Close."""
        stream = getattr(self, "stream", b"")
        end = time.time() + timeout
        while True:
            if len(stream) >= 2:
                mult, length, i = 1, 0, 1
                while i < len(stream) and i < 5:
                    length += (stream[i] & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not stream[i - 1] & 0x80:
                        if len(stream) >= i + length:
                            self.stream = stream[i + length:]
                            return stream[0], stream[i:i + length]
                        break
            f = self.read_frame(max(0.05, end - time.time()))
            if f is None or f[0] == 0x8:
                self.stream = stream
                return None
            if f[0] in (0x0, 0x2):
                stream += f[1]

    def close(self):
        self.sock.close()


def connect(port, path="/mqtt", timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(upgrade_request(path))
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("no upgrade answer: %r" % data)
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError("upgrade refused: %r" % head)
    return Conn(s, rest)
