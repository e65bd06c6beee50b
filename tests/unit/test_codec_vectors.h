/*
 * test_codec_vectors.h - whole packets written by hand from the layouts of
 * the MQTT 3.1, 3.1.1 and 5.0 specifications (never produced by our own
 * encoder). Comments give the field each group of bytes is. Shared by the
 * unit tests; fuzz/corpus/ holds the same packets as seed files.
 */
#ifndef MIDGE_TEST_CODEC_VECTORS_H
#define MIDGE_TEST_CODEC_VECTORS_H

#include <stddef.h>
#include <stdint.h>

struct vec {
	const char *name;
	uint8_t version; /* connection version passed to codec_decode */
	const uint8_t *bytes;
	size_t len;
};

#define VEC(n, ver, ...)                                                                      \
	{                                                                                     \
		n, ver, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}) \
	}

/* Valid packets: one or more per packet type and protocol level. */
static const struct vec valid_vectors[] = {
	/* CONNECT 3.1.1, clean session, keep alive 60, empty client id (3.1.2) */
	VEC("connect_v311_min", 0, 0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00,
	    0x3C, 0x00, 0x00),
	/* CONNECT 3.1.1 flags 0xEE: user, password, will retain, will QoS 1,
	 * will, clean session; client id "cid", will topic "w/t", will
	 * message "hi", user "u", password "pw" (3.1.3) */
	VEC("connect_v311_full", 0, 0x10, 0x1F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xEE, 0x00,
	    0x3C, 0x00, 0x03, 'c', 'i', 'd', 0x00, 0x03, 'w', '/', 't', 0x00, 0x02, 'h', 'i', 0x00,
	    0x01, 'u', 0x00, 0x02, 'p', 'w'),
	/* CONNECT 3.1: protocol name "MQIsdp", level 3, client id "a" */
	VEC("connect_v31", 0, 0x10, 0x0F, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02,
	    0x00, 0x3C, 0x00, 0x01, 'a'),
	/* CONNECT 5: properties (length 5): session expiry interval 10;
	 * client id "a" (3.1.2.11) */
	VEC("connect_v5_props", 0, 0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00,
	    0x3C, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x01, 'a'),
	/* CONNECT 5 with will: flags 0xC6 (user, password, will, clean
	 * start); properties (10): receive maximum 10, user property k=v;
	 * client id "c"; will properties (7): payload format 1, will delay 5;
	 * will topic "t", will payload 01 02, user "u", password "p". Properties
	 * appear in identifier order, as our encoder writes them, so the
	 * vectors also check the encoder byte for byte. */
	VEC("connect_v5_will", 0, 0x10, 0x2D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0xC6, 0x00,
	    0x3C, 0x0A, 0x21, 0x00, 0x0A, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x00, 0x01, 'c',
	    0x07, 0x01, 0x01, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 't', 0x00, 0x02, 0x01, 0x02,
	    0x00, 0x01, 'u', 0x00, 0x01, 'p'),
	/* CONNACK 3.1.1: session present 0, return code 0 (3.2) */
	VEC("connack_v311", 4, 0x20, 0x02, 0x00, 0x00),
	/* CONNACK 3.1.1: session present, accepted */
	VEC("connack_v311_sp", 4, 0x20, 0x02, 0x01, 0x00),
	/* CONNACK 3.1: return code 5 not authorized */
	VEC("connack_v31_rc5", 3, 0x20, 0x02, 0x00, 0x05),
	/* CONNACK 5: no properties */
	VEC("connack_v5_min", 5, 0x20, 0x03, 0x00, 0x00, 0x00),
	/* CONNACK 5: properties (9): assigned client identifier "id",
	 * maximum QoS 1, retain available 0 (3.2.2.3) */
	VEC("connack_v5_props", 5, 0x20, 0x0C, 0x00, 0x00, 0x09, 0x12, 0x00, 0x02, 'i', 'd', 0x24,
	    0x01, 0x25, 0x00),
	/* PUBLISH 3.1.1 QoS 0: topic "a/b", payload "hi" (3.3) */
	VEC("publish_v311_q0", 4, 0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'),
	/* PUBLISH 3.1.1 DUP, QoS 1, RETAIN: topic "a/b", packet id 10, "hi" */
	VEC("publish_v311_q1", 4, 0x3B, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'),
	/* PUBLISH 3.1 QoS 2 with an empty payload */
	VEC("publish_v31_q2", 3, 0x34, 0x07, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0B),
	/* PUBLISH before CONNECT decodes as 3.1.1 */
	VEC("publish_v0_q0", 0, 0x31, 0x05, 0x00, 0x03, 'x', 'y', 'z'),
	/* PUBLISH 5 QoS 0: topic "a/b", no properties, "hi" */
	VEC("publish_v5_q0", 5, 0x30, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 'h', 'i'),
	/* PUBLISH 5 QoS 2: topic "a/b", packet id 1, properties (22): payload
	 * format 1, message expiry 60, subscription ids 129 and 2, topic
	 * alias 5, user property k=v; payload "x" (3.3.2.3) */
	VEC("publish_v5_q2_props", 5, 0x34, 0x1F, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 0x16,
	    0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x3C, 0x0B, 0x81, 0x01, 0x0B, 0x02, 0x23, 0x00,
	    0x05, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 'x'),
	/* PUBLISH 5: empty topic with topic alias 1 (3.3.2.3.4) */
	VEC("publish_v5_alias", 5, 0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01),
	/* PUBLISH 5: content type "t/x", response topic "r", correlation
	 * data 01 02 (properties 15) and a UTF-8 topic "é" */
	VEC("publish_v5_req", 5, 0x30, 0x14, 0x00, 0x02, 0xC3, 0xA9, 0x0F, 0x03, 0x00, 0x03, 't',
	    '/', 'x', 0x08, 0x00, 0x01, 'r', 0x09, 0x00, 0x02, 0x01, 0x02),
	/* PUBACK 3.1.1 packet id 1 (3.4) */
	VEC("puback_v311", 4, 0x40, 0x02, 0x00, 0x01),
	/* PUBACK 5 with only a packet id: reason 0 (3.4.2.1) */
	VEC("puback_v5_short", 5, 0x40, 0x02, 0x00, 0x01),
	/* PUBACK 5 reason 0x10 no matching subscribers, no properties */
	VEC("puback_v5_rc", 5, 0x40, 0x03, 0x00, 0x01, 0x10),
	/* PUBACK 5 reason 0x80 with reason string "bad" */
	VEC("puback_v5_props", 5, 0x40, 0x0A, 0x00, 0x01, 0x80, 0x06, 0x1F, 0x00, 0x03, 'b', 'a',
	    'd'),
	/* PUBREC 3.1.1 (3.5) */
	VEC("pubrec_v311", 4, 0x50, 0x02, 0x00, 0x02),
	/* PUBREC 5 reason 0x91 packet identifier in use */
	VEC("pubrec_v5", 5, 0x50, 0x03, 0x00, 0x02, 0x91),
	/* PUBREL 3.1.1, flags 0010 (3.6) */
	VEC("pubrel_v311", 4, 0x62, 0x02, 0x00, 0x03),
	/* PUBREL 5 reason 0x92 packet identifier not found */
	VEC("pubrel_v5", 5, 0x62, 0x03, 0x00, 0x03, 0x92),
	/* PUBCOMP 3.1 (3.7) */
	VEC("pubcomp_v31", 3, 0x70, 0x02, 0x00, 0x04),
	/* PUBCOMP 5 reason 0 with an empty property block */
	VEC("pubcomp_v5", 5, 0x70, 0x04, 0x00, 0x04, 0x00, 0x00),
	/* SUBSCRIBE 3.1.1: packet id 10, "a/b" QoS 1, "#" QoS 2 (3.8) */
	VEC("subscribe_v311", 4, 0x82, 0x0C, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00,
	    0x01, '#', 0x02),
	/* SUBSCRIBE 3.1: "+/x" QoS 0 */
	VEC("subscribe_v31", 3, 0x82, 0x08, 0x00, 0x01, 0x00, 0x03, '+', '/', 'x', 0x00),
	/* SUBSCRIBE 5: packet id 10, subscription id 5, "a/+" with QoS 1,
	 * no local, retain as published, retain handling 2 (0x2D) (3.8.3.1) */
	VEC("subscribe_v5", 5, 0x82, 0x0B, 0x00, 0x0A, 0x02, 0x0B, 0x05, 0x00, 0x03, 'a', '/',
	    '+', 0x2D),
	/* SUBSCRIBE 5: shared subscription "$share/g/t/#" QoS 0, user property */
	VEC("subscribe_v5_shared", 5, 0x82, 0x19, 0x00, 0x0B, 0x07, 0x26, 0x00, 0x01, 'k', 0x00,
	    0x01, 'v', 0x00, 0x0C, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 't', '/', '#', 0x00),
	/* SUBACK 3.1.1: packet id 10, granted 1, failure 0x80 (3.9) */
	VEC("suback_v311", 4, 0x90, 0x04, 0x00, 0x0A, 0x01, 0x80),
	/* SUBACK 5: packet id 10, no properties, codes 1 and 0x97 */
	VEC("suback_v5", 5, 0x90, 0x05, 0x00, 0x0A, 0x00, 0x01, 0x97),
	/* UNSUBSCRIBE 3.1.1: packet id 11, "a/b" (3.10) */
	VEC("unsubscribe_v311", 4, 0xA2, 0x07, 0x00, 0x0B, 0x00, 0x03, 'a', '/', 'b'),
	/* UNSUBSCRIBE 5: packet id 11, no properties, "a/b" and "#" */
	VEC("unsubscribe_v5", 5, 0xA2, 0x0B, 0x00, 0x0B, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x00,
	    0x01, '#'),
	/* UNSUBACK 3.1.1: packet id only (3.11) */
	VEC("unsuback_v311", 4, 0xB0, 0x02, 0x00, 0x0B),
	/* UNSUBACK 5: packet id 11, no properties, codes 0x00 and 0x11 */
	VEC("unsuback_v5", 5, 0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11),
	/* PINGREQ, PINGRESP (3.12, 3.13) */
	VEC("pingreq_v311", 4, 0xC0, 0x00),
	VEC("pingresp_v5", 5, 0xD0, 0x00),
	VEC("pingreq_v31", 3, 0xC0, 0x00),
	/* DISCONNECT 3.1.1 (3.14) */
	VEC("disconnect_v311", 4, 0xE0, 0x00),
	/* DISCONNECT 5 with nothing: normal disconnection (3.14.2.1) */
	VEC("disconnect_v5_min", 5, 0xE0, 0x00),
	/* DISCONNECT 5 reason 0x04 disconnect with will, no properties */
	VEC("disconnect_v5_rc", 5, 0xE0, 0x01, 0x04),
	/* DISCONNECT 5 reason 0x8E session taken over, session expiry 0 */
	VEC("disconnect_v5_props", 5, 0xE0, 0x07, 0x8E, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00),
	/* AUTH 5 with nothing (3.15.2.1) */
	VEC("auth_v5_min", 5, 0xF0, 0x00),
	/* AUTH 5 reason 0x18 continue, method "SCRA", data 01 02 */
	VEC("auth_v5", 5, 0xF0, 0x0E, 0x18, 0x0C, 0x15, 0x00, 0x04, 'S', 'C', 'R', 'A', 0x16,
	    0x00, 0x02, 0x01, 0x02),
};

#define N_VALID (sizeof(valid_vectors) / sizeof(valid_vectors[0]))

#endif
