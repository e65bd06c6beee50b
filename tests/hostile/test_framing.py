#!/usr/bin/python3
"""Hostile clients, group "framing": the fixed header and the remaining
length. Each case checks the exact reaction (v5: the DISCONNECT or
CONNACK reason code; 3.1.1: the close), then that a normal client still
round-trips a QoS 1 message. The 200 MB claims run twice: at the suite's
256 KiB max_packet_size (refused from the header) and against the default
configuration (within the maximum: held open, memory bounded)."""

import time

import broker as brokerctl
from hostile import (after, pre, V311, V5, VNAME, CONNECT_TIMEOUT, Conn, Suite, connected, connect,
                     expect_connect_refused, expect_protocol_close, expect_silent_close,
                     fail, mstr, pkt, props, publish, subscribe, u16, vbi, rss_mb, DISCONNECT)

# The default configuration: no max_packet_size line, so the bound is
# 268435455, the largest length four bytes can claim; before CONNECT midge
# applies midge_max_packet_before_connect (65536), Mosquitto nothing.
DEFAULT_CONFIG = ""
CLAIM = 200 * 1024 * 1024
STREAMED = 8 * 1024 * 1024


def pre_length_beyond_sent(b):
    # CONNECT announcing 1000 bytes, 12 sent, then silence: the connect
    # timeout must cut it (the slot is not held forever).
    c = Conn(b.port)
    c.send(b"\x10" + vbi(1000) + mstr("MQTT") + bytes([4, 2, 0, 60, 0, 0]))
    obs = c.observe(CONNECT_TIMEOUT + 4)
    c.close()
    return expect_silent_close(obs, CONNECT_TIMEOUT + 2.5)


def rss_growth(b, rss0, limit=16):
    """The broker's resident memory growth in MB since rss0; fails past limit."""
    grow = rss_mb(b) - rss0
    if grow > limit:
        fail("RSS growth under %d MB" % limit, "%.1f MB" % grow)
    return grow


def pre_oversize_claim(bounded):
    # Only the header of a 200 MB CONNECT. bounded: the broker has a packet
    # bound below the claim before CONNECT and refuses from the header
    # alone, well before the connect timeout, without buffering (the
    # version is unknown, so no CONNACK [MQTT-4.8.0-1]); else it waits.
    def run(b):
        rss0 = rss_mb(b)
        c = Conn(b.port)
        c.send(b"\x10" + vbi(CLAIM))
        obs = c.observe(CONNECT_TIMEOUT + 1)
        c.close()
        if bounded:
            what = expect_silent_close(obs, 1.0)
        elif obs.closed or obs.packets:
            fail("still open, nothing sent (no bound before CONNECT)", obs.describe())
        else:
            what = "still open, no packet (%.2fs)" % obs.elapsed
        return what + ", RSS +%.1f MB" % rss_growth(b, rss0)
    return run


def connect_wrong_flags(version):
    def run(b):
        c = Conn(b.port)
        c.version = version
        data = bytearray(connect(version, "badflags"))
        data[0] = 0x11  # CONNECT flags are reserved 0000 [MQTT-2.2.2-2]
        c.send(bytes(data))
        obs = c.observe(4)
        c.close()
        if obs.closed and not obs.packets and obs.elapsed <= 3:
            return "close (header refused before the version is known)"
        return expect_connect_refused(obs, (0x81,))
    return run


def length_beyond_sent(version):
    def run(b):
        c = connected(b, version, keepalive=2)
        c.send(b"\x30" + vbi(1000) + mstr("a/b") + b"x" * 10)
        obs = c.observe(8)
        c.close()
        # Keep alive 2 s: no complete packet within 1.5 x 2 s ->
        # close [MQTT-3.1.2-24] (v5 may say DISCONNECT 0x8D first).
        limit = 3.0 + 1.5
        if not obs.closed or obs.elapsed > limit:
            fail("close within %.1fs (1.5 x keepalive + 1.5s slack)" % limit, obs.describe())
        if obs.packets and not (version == V5 and len(obs.packets) == 1 and
                                obs.packets[0].type == DISCONNECT and
                                obs.packets[0].rc(V5) == 0x8D):
            fail("close (v5: optionally DISCONNECT 0x8D)", obs.describe())
        return obs.describe()
    return run


def oversize_claim(version, within_max=False):
    # A connected client claims a 200 MB PUBLISH and sends only the header.
    def run(b):
        rss0 = rss_mb(b)
        c = connected(b, version)
        c.send(b"\x30" + vbi(CLAIM))
        if within_max:
            return held_open(b, c, rss0)
        obs = c.observe(5)
        c.close()
        # Over max_packet_size (256 KiB in BASE_CONFIG): v5 DISCONNECT
        # 0x95 [MQTT-4.13, reason code 0x95], 3.1.1 close [MQTT-4.8.0-1].
        what = expect_protocol_close(obs, (0x95,), within=1.5)
        return what + ", RSS +%.1f MB" % rss_growth(b, rss0)
    return run


def held_open(b, c, rss0):
    # Within the default maximum a 200 MB claim is no error: no DISCONNECT,
    # no close, the broker waits for the body. Memory follows the bytes
    # that arrive, not the claim: after 8 MiB of body the growth stays
    # near 8 MiB (twice that, plus slack, for a sanitizer's quarantine).
    obs = c.observe(3)
    if obs.closed or obs.packets:
        fail("still open, nothing sent, for a claim within max_packet_size", obs.describe())
    idle = rss_growth(b, rss0)
    chunk = b"\0" * 65536
    for _ in range(STREAMED // len(chunk)):
        c.send(chunk)
    obs = c.observe(1)
    grow = rss_growth(b, rss0, 2 * (STREAMED >> 20) + 8)  # before the close frees it
    c.close()
    if obs.closed or obs.packets:
        fail("still open after %d MiB of body" % (STREAMED >> 20), obs.describe())
    return "open, no packet; RSS +%.1f MB idle, +%.1f MB after %d MiB" % (
        idle, grow, STREAMED >> 20)


def truncated_then_close(version):
    def run(b):
        c = connected(b, version)
        full = subscribe(7, [("trunc/#", 1)], version)
        c.send(full[:len(full) // 2])
        time.sleep(0.1)
        c.close()
        time.sleep(0.2)
        return "client gone mid-packet, broker serves others"
    return run


def main():
    s = Suite("framing")
    s.case("pre_connect_reserved_type0", pre(b"\x00\x00"))
    s.case("pre_connect_garbage_http", pre(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    s.case("pre_connect_garbage_binary", pre(bytes(range(0x80, 0x100))))
    s.case("pre_connect_publish_first", pre(publish("a/b", b"x")))
    s.case("pre_connect_five_byte_length", pre(b"\x10\xff\xff\xff\xff\x01"))
    s.case("pre_connect_length_beyond_sent", pre_length_beyond_sent)
    s.case("pre_connect_200MB_claim", pre_oversize_claim(True))
    for v in (V311, V5):
        s.case("connect_wrong_flags_v%s" % VNAME[v], connect_wrong_flags(v))

    for v in (V311, V5):
        n = "v" + VNAME[v]
        p5 = props() if v == V5 else b""
        s.case("reserved_type0_" + n, after(v, b"\x00\x00", (0x81, 0x82)))
        if v == V311:
            s.case("reserved_type15_" + n, after(v, b"\xf0\x00"))
        else:
            # AUTH without an Authentication Method in CONNECT [MQTT-4.12.0-6]
            s.case("auth_unexpected_" + n, after(v, pkt(0xF0, b"\x18" + props()), (0x82,)))
        wrong = [
            ("PUBACK", pkt(0x41, u16(1))),
            ("PUBREC", pkt(0x51, u16(1))),
            ("PUBREL", pkt(0x60, u16(1))),
            ("PUBCOMP", pkt(0x71, u16(1))),
            ("SUBSCRIBE", pkt(0x80, u16(1) + p5 + mstr("a") + b"\x00")),
            ("UNSUBSCRIBE", pkt(0xA0, u16(1) + p5 + mstr("a"))),
            ("PINGREQ", b"\xc1\x00"),
            ("DISCONNECT", b"\xe1\x00"),
        ]
        for name, data in wrong:
            # Reserved flags must be as listed [MQTT-2.2.2-1]; other
            # values are malformed [MQTT-2.2.2-2] -> 0x81.
            s.case("wrong_flags_%s_%s" % (name, n), after(v, data, (0x81,)))
        server_only = [
            ("CONNACK", pkt(0x20, b"\x00\x00" + p5)),
            ("SUBACK", pkt(0x90, u16(1) + p5 + b"\x00")),
            ("UNSUBACK", pkt(0xB0, u16(1) + p5 + (b"\x00" if v == V5 else b""))),
            ("PINGRESP", b"\xd0\x00"),
        ]
        for name, data in server_only:
            s.case("client_sends_%s_%s" % (name, n), after(v, data, (0x81, 0x82)))
        s.case("five_byte_length_" + n, after(v, b"\x30\xff\xff\xff\xff\x01", (0x81,)))
        s.case("length_beyond_sent_" + n, length_beyond_sent(v))
        s.case("200MB_claim_" + n, oversize_claim(v))
        s.case("truncated_then_close_" + n, truncated_then_close(v))

    # A fresh broker per case: memory a previous case left in the heap
    # would hide this one's growth.
    s.restart(DEFAULT_CONFIG)
    s.case("default_config_pre_connect_200MB_claim",
           pre_oversize_claim(brokerctl.kind() != "mosquitto"))
    for v in (V311, V5):
        s.restart(DEFAULT_CONFIG)
        s.case("default_config_200MB_claim_v" + VNAME[v], oversize_claim(v, within_max=True))
    s.finish()


if __name__ == "__main__":
    main()
