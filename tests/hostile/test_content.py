#!/usr/bin/python3
"""Hostile clients, group "content": bad strings (ill-formed UTF-8,
U+0000, surrogates), wildcards in topic names, malformed filters, QoS 3,
and MQTT 5 properties (duplicates, unknown ids, topic aliases, receive
maximum, lengths that overrun)."""

from hostile import (after, V311, V5, VNAME, PUBREC, SUBACK, Conn, Suite, connected,
                     connect, expect_connect_refused, expect_protocol_close, fail, mstr, parse_props,
                     pkt, props, publish, subscribe, suback_codes, u16, u32, vbi)

BAD_STRINGS = [
    ("invalid_utf8", b"ab\xc3\x28"),       # [MQTT-1.5.3-1] / v5 [MQTT-1.5.4-1]
    ("nul", b"a\x00b"),                    # [MQTT-1.5.3-2] / v5 [MQTT-1.5.4-2]
    ("surrogate", b"a\xed\xa0\x80"),       # U+D800 [MQTT-1.5.3-1]
    ("overlong_nul", b"a\xc0\x80"),        # overlong U+0000
]


def bad_connect(version, **kw):
    def run(b):
        c = Conn(b.port)
        c.version = version
        c.send(connect(version, **kw))
        obs = c.observe(4)
        c.close()
        return expect_connect_refused(obs, (0x81,))
    return run


def bad_filter(version, flt):
    """A malformed filter [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]: 3.1.1
    closes or answers SUBACK 0x80; v5 answers SUBACK 0x8F or DISCONNECT
    0x81/0x82. Never granted."""
    def run(b):
        c = connected(b, version)
        c.send(subscribe(9, [(flt, 1)], version))
        obs = c.observe(1.5)
        c.close()
        if obs.packets and obs.packets[0].type == SUBACK:
            codes = suback_codes(obs.packets[0], version)
            want = 0x8F if version == V5 else 0x80
            if codes != [want] and not (version == V5 and codes == [0x80]):
                fail("SUBACK 0x%02x (refused) or close" % want, obs.describe())
            return obs.describe()
        if version == V5:
            return expect_protocol_close(obs, (0x81, 0x82, 0x8F), 1.5)
        return expect_protocol_close(obs, (), 1.5)
    return run


def dup_connect_property(b):
    # Session Expiry Interval twice: Protocol Error [MQTT-3.1.2-?] (3.1.2.11.2).
    c = Conn(b.port)
    c.version = V5
    c.send(connect(V5, "dupprop", properties=props(b"\x11" + u32(10), b"\x11" + u32(20))))
    obs = c.observe(4)
    c.close()
    return expect_connect_refused(obs, (0x82,))


def unknown_connect_property(b):
    c = Conn(b.port)
    c.version = V5
    c.send(connect(V5, "unkprop", properties=props(b"\x50\x01")))
    obs = c.observe(4)
    c.close()
    return expect_connect_refused(obs, (0x81, 0x82))


def connect_property_overrun(b):
    # The property length claims more than the packet holds: malformed.
    c = Conn(b.port)
    c.version = V5
    c.send(connect(V5, "overrun", properties=vbi(200) + b"\x11" + u32(10)))
    obs = c.observe(4)
    c.close()
    return expect_connect_refused(obs, (0x81,))


def alias_max(b):
    c = Conn(b.port)
    ack = c.handshake(V5, "aliasmax")
    p, _ = parse_props(ack.body[2:])
    return c, p.get(0x22, [0])[0]


def topic_alias_above_max(b):
    c, amax = alias_max(b)
    # [MQTT-3.3.2-10]: above the Topic Alias Maximum -> DISCONNECT 0x94.
    c.send(publish("a/b", b"x", 0, version=V5, properties=props(b"\x23" + u16(amax + 1))))
    obs = c.observe(3)
    c.close()
    return "max %d: %s" % (amax, expect_protocol_close(obs, (0x94,), 2.0))


def topic_alias_unknown(b):
    c, amax = alias_max(b)
    if amax == 0:
        # Aliases not accepted at all: any alias is above the maximum.
        c.send(publish("", b"x", 0, version=V5, properties=props(b"\x23" + u16(1))))
        obs = c.observe(3)
        c.close()
        return "max 0: " + expect_protocol_close(obs, (0x94,), 2.0)
    # Empty topic with an alias never set: Protocol Error (3.3.2.3.4).
    c.send(publish("", b"x", 0, version=V5, properties=props(b"\x23" + u16(1))))
    obs = c.observe(3)
    c.close()
    return "max %d: %s" % (amax, expect_protocol_close(obs, (0x82, 0x94), 2.0))


def receive_maximum_exceeded(b):
    c = Conn(b.port)
    ack = c.handshake(V5, "recvmax")
    p, _ = parse_props(ack.body[2:])
    rmax = p.get(0x21, [65535])[0]
    # rmax+1 QoS 2 PUBLISHes never released: the one over the window gets
    # DISCONNECT 0x93 [MQTT-3.3.4-9]; the PUBRECs before it are allowed.
    burst = b"".join(publish("rm/t", b"x", 2, i + 1, version=V5) for i in range(rmax + 1))
    c.send(burst)
    obs = c.observe(5 + rmax / 5000.0)
    c.close()
    return "receive maximum %d: %s" % (rmax, expect_protocol_close(obs, (0x93,), 4 + rmax / 5000.0,
                                                                     allow_before=(PUBREC,)))


def main():
    s = Suite("content")
    for v in (V311, V5):
        n = "v" + VNAME[v]
        for sname, bad in BAD_STRINGS:
            s.case("client_id_%s_%s" % (sname, n), bad_connect(v, client_id=bad))
            s.case("username_%s_%s" % (sname, n), bad_connect(v, client_id="u" + sname,
                                                               username=bad))
            s.case("topic_%s_%s" % (sname, n), after(v, publish(bad, b"x", 0, version=v), (0x81,)))
            s.case("filter_%s_%s" % (sname, n), after(v, subscribe(3, [(bad, 0)], v), (0x81,)))
        # Wildcards in a topic name [MQTT-3.3.2-2]; v5 names no single code.
        s.case("topic_wildcard_plus_" + n, after(v, publish("a/+", b"x", 0, version=v), (0x81, 0x82, 0x90)))
        s.case("topic_wildcard_hash_" + n, after(v, publish("a/#", b"x", 1, 5, version=v), (0x81, 0x82, 0x90)))
        # An empty topic name without an alias [MQTT-4.7.3-1] (v5 [MQTT-3.3.2-1]).
        s.case("topic_empty_" + n, after(v, publish("", b"x", 0, version=v), (0x81, 0x82, 0x90)))
        for fname, flt in (("hash_not_last", "a/#/b"), ("hash_in_level", "a/b#"),
                           ("plus_in_level", "a/b+/c"), ("empty", "")):
            s.case("filter_%s_%s" % (fname, n), bad_filter(v, flt))
        # QoS 3 in PUBLISH is malformed [MQTT-3.3.1-4].
        s.case("publish_qos3_" + n, after(v, pkt(0x36, mstr("a/b") + u16(1) +
                                                 (props() if v == V5 else b"") + b"x"), (0x81,)))
        # Requested QoS 3 [MQTT-3.8.3-4]; reserved option bits [MQTT-3.8.3-5].
        s.case("subscribe_qos3_" + n, after(v, subscribe(4, [("a/b", 3)], v), (0x81, 0x82)))
        s.case("subscribe_reserved_bits_" + n, after(v, subscribe(4, [("a/b", 0xC1)], v), (0x81,)))
    s.case("connect_duplicate_property_v5", dup_connect_property)
    s.case("connect_unknown_property_v5", unknown_connect_property)
    s.case("connect_property_length_overrun_v5", connect_property_overrun)
    # Message Expiry Interval twice: Protocol Error (3.3.2.3.3).
    s.case("publish_duplicate_property_v5", after(V5, publish("a/b", b"x", 0, version=V5, properties=props(
        b"\x02" + u32(10), b"\x02" + u32(20))), (0x82,)))
    s.case("publish_unknown_property_v5", after(V5, publish("a/b", b"x", 0, version=V5, properties=props(
        b"\x50\x01")), (0x81, 0x82)))
    # Session Expiry Interval is not a PUBLISH property.
    s.case("publish_property_of_other_packet_v5", after(V5, publish("a/b", b"x", 0, version=V5, properties=props(
        b"\x11" + u32(10))), (0x81, 0x82)))
    s.case("publish_property_length_overrun_v5", after(V5, pkt(0x30, mstr("a/b") + vbi(100) + b"\x02\x00"),
                                                       (0x81,)))
    # A string property whose length overruns the property block.
    s.case("publish_property_string_overrun_v5", after(V5, pkt(0x30, mstr("a/b") + vbi(5) + b"\x03" + u16(200)
                                                               + b"ab" + b"payload"), (0x81,)))
    # Subscription Identifier 0 is a Protocol Error (3.8.2.1.2).
    s.case("subscription_identifier_0_v5", after(V5, subscribe(5, [("a/b", 0)], V5, props(b"\x0b\x00")),
                                                 (0x81, 0x82)))
    # Topic Alias 0 [MQTT-3.3.2-8]: 0x94 Topic Alias invalid, or 0x82 as
    # the reason-code table describes 0x94 only for "above the maximum".
    s.case("topic_alias_0_v5", after(V5, publish("a/b", b"x", 0, version=V5, properties=props(
        b"\x23" + u16(0))), (0x94, 0x82)))
    s.case("topic_alias_above_maximum_v5", topic_alias_above_max)
    s.case("topic_alias_unknown_v5", topic_alias_unknown)
    s.case("receive_maximum_exceeded_v5", receive_maximum_exceeded, timeout=60)
    s.finish()


if __name__ == "__main__":
    main()
