#!/usr/bin/python3
"""Hostile clients, group "order": packets out of protocol order, acks
for unknown packet ids, empty SUBSCRIBE/UNSUBSCRIBE, packet id 0, bad
CONNECT headers."""

from hostile import (V311, V5, VNAME, PUBCOMP, PUBREL, Conn, Suite, after, connected,
                     connect, expect_connect_refused, expect_still_open, fail, mstr, pkt,
                     pre, props, publish, subscribe, u16, ack, PUBACK, PUBREC, PINGREQ_PKT,
                     disconnect_pkt)


def tolerated(version, data, allowed=(), v5rc=None):
    """The broker keeps the connection; any answer is of a type in
    allowed (and, in v5, carries reason code v5rc when given)."""
    def run(b):
        c = connected(b, version)
        c.send(data)
        obs = c.observe(1.0)
        for p in obs.packets:
            if p.type not in allowed:
                fail("no answer or %s" % "/".join(map(str, allowed)), obs.describe())
            if version == V5 and v5rc is not None and p.rc(V5) != v5rc:
                fail("reason code 0x%02x" % v5rc, obs.describe())
        expect_still_open(c, obs)
        c.close()
        return (obs.describe() if obs.packets else "ignored") + ", connection kept"
    return run


def pubrel_unknown_v5(b):
    # [MQTT-4.3.3-?] v5 3.7.2.1: PUBCOMP 0x92 Packet Identifier not found.
    c = connected(b, V5)
    c.send(ack(PUBREL, 4242, V5))
    obs = c.observe(1.5)
    if len(obs.packets) != 1 or obs.packets[0].type != PUBCOMP or obs.packets[0].rc(V5) != 0x92 \
            or obs.packets[0].pid() != 4242:
        fail("PUBCOMP 4242 0x92, connection kept", obs.describe())
    expect_still_open(c, obs)
    c.close()
    return "PUBCOMP 0x92, connection kept"


def connect_bad_header(version, mutate, v5codes, v3codes=None, allow_silent=False):
    def run(b):
        c = Conn(b.port)
        c.version = version
        c.send(mutate(bytearray(connect(version, "badhdr"))))
        obs = c.observe(4)
        c.close()
        if allow_silent and obs.closed and not obs.packets and obs.elapsed < 3:
            return "close"
        return expect_connect_refused(obs, v5codes, v3codes)
    return run


def set_byte(i, v):
    def m(data):
        data[i] = v
        return bytes(data)
    return m


def or_byte(i, v):
    def m(data):
        data[i] |= v
        return bytes(data)
    return m


def main():
    s = Suite("order")
    s.case("pre_connect_pingreq", pre(PINGREQ_PKT))
    s.case("pre_connect_subscribe", pre(subscribe(1, [("a", 0)])))
    s.case("pre_connect_disconnect", pre(disconnect_pkt()))
    s.case("pre_connect_puback", pre(ack(PUBACK, 1)))
    # Offsets in a CONNECT "MQTT": 0 type, 1 length, 2-3 name length,
    # 4-7 name, 8 level, 9 flags.
    for v in (V311, V5):
        n = "v" + VNAME[v]
        # Unsupported level: 3.1.1 CONNACK 0x01 [MQTT-3.1.2-2]; v5 0x84
        # [MQTT-3.1.2-2] (level 6 is not v5, so the 3.1.1 form is fine too).
        s.case("connect_level_6_" + n, connect_bad_header(v, set_byte(8, 6), (0x84, 0x01), (0x01,),
                                                           allow_silent=True))
        # A wrong protocol name: the server may close [MQTT-3.1.2-1], or
        # answer per "some other specification" (3.1.1's CONNACK 0x01).
        s.case("connect_name_MQTX_" + n, connect_bad_header(v, set_byte(7, ord("X")), (0x84, 0x81, 0x01),
                                                             (0x01,), allow_silent=True))
        # Reserved connect flag set [MQTT-3.1.2-3]: malformed.
        s.case("connect_reserved_flag_" + n, connect_bad_header(v, or_byte(9, 0x01), (0x81,)))
        # Will QoS 3 [MQTT-3.1.2-14]; will QoS without will flag [MQTT-3.1.2-13].
        s.case("connect_will_qos3_" + n, connect_bad_header(v, or_byte(9, 0x18), (0x81, 0x82)))
        if v == V311:
            # Password without user name [MQTT-3.1.2-22].
            def pw_only(d):
                d = bytes(d[:9]) + bytes([d[9] | 0x40]) + bytes(d[10:]) + mstr("pw")
                return bytes([0x10, len(d) - 2]) + d[2:]
            s.case("connect_password_without_username_" + n, connect_bad_header(v, pw_only, (0x81,)))

        s.case("second_connect_" + n, after(v, connect(v, "again"), (0x82,)))  # [MQTT-3.1.0-2]
        s.case("puback_unknown_id_" + n, tolerated(v, ack(PUBACK, 4242, v)))
        s.case("pubrec_unknown_id_" + n, tolerated(v, ack(PUBREC, 4242, v), (PUBREL,), 0x92))
        if v == V5:
            s.case("pubrel_unknown_id_" + n, pubrel_unknown_v5)
        else:
            s.case("pubrel_unknown_id_" + n, tolerated(v, ack(PUBREL, 4242, v), (PUBCOMP,)))
        s.case("pubcomp_unknown_id_" + n, tolerated(v, ack(PUBCOMP, 4242, v)))
        p5 = props() if v == V5 else b""
        # No topic filter: protocol violation [MQTT-3.8.3-3] (v5 [MQTT-3.8.3-2]).
        s.case("subscribe_no_filters_" + n, after(v, pkt(0x82, u16(1) + p5), (0x82,)))
        s.case("unsubscribe_no_filters_" + n, after(v, pkt(0xA2, u16(1) + p5), (0x82,)))  # [MQTT-3.10.3-2]
        # Packet id 0 [MQTT-2.3.1-1] (v5 [MQTT-2.2.1-3]).
        s.case("subscribe_packet_id_0_" + n, after(v, subscribe(0, [("a/b", 1)], v), (0x81, 0x82)))
        s.case("unsubscribe_packet_id_0_" + n, after(v, pkt(0xA2, u16(0) + p5 + mstr("a/b")), (0x81, 0x82)))
        s.case("publish_qos1_packet_id_0_" + n, after(v, publish("a/b", b"x", 1, 0, version=v), (0x81, 0x82)))
        s.case("publish_qos2_packet_id_0_" + n, after(v, publish("a/b", b"x", 2, 0, version=v), (0x81, 0x82)))
    s.finish()


if __name__ == "__main__":
    main()
