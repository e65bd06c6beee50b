/*
 * fuzz_common.h - what the codec harnesses share: the stream loop that
 * splits an input into packets the way the transport does, and the
 * invariants every decode must keep. A broken invariant aborts, which is
 * how a harness reports a finding.
 */
#ifndef MIDGE_FUZZ_COMMON_H
#define MIDGE_FUZZ_COMMON_H

#include "codec/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                              \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* The first input byte picks the connection's protocol level. */
static inline uint8_t fuzz_version(uint8_t b)
{
	static const uint8_t v[4] = {0, CODEC_V31, CODEC_V311, CODEC_V5};
	return v[b & 3];
}

/* The reason codes codec_decode() may return, negated. */
static inline int fuzz_rc_known(int rc)
{
	switch (-rc) {
	case 0:
	case MQTT_RC_MALFORMED:
	case MQTT_RC_PROTOCOL_ERROR:
	case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
	case MQTT_RC_TOPIC_FILTER_INVALID:
	case MQTT_RC_TOPIC_NAME_INVALID:
	case MQTT_RC_TOPIC_ALIAS_INVALID:
		return 1;
	default:
		return 0;
	}
}

static inline int fuzz_in(struct codec_buf b, const uint8_t *body, uint32_t len)
{
	return b.len == 0 || (b.p >= body && b.p + b.len <= body + len);
}

/* Walks every repeated part of a decoded packet and checks each view lies
 * inside the body and the counts agree with the iterators. */
static inline void fuzz_check_props(const struct codec_props *pr, const uint8_t *body, uint32_t len)
{
	uint32_t pos = 0, n = 0, id;
	struct codec_buf k, v;

	FUZZ_CHECK(fuzz_in(pr->raw, body, len));
	while (codec_props_next_user(pr, &pos, &k, &v)) {
		FUZZ_CHECK(fuzz_in(k, body, len) && fuzz_in(v, body, len));
		n++;
	}
	FUZZ_CHECK(n == pr->user_count);
	pos = n = 0;
	while (codec_props_next_sub_id(pr, &pos, &id)) {
		FUZZ_CHECK(id >= 1 && id <= CODEC_MAX_REMAINING);
		n++;
	}
	FUZZ_CHECK(n == pr->sub_id_count);
	FUZZ_CHECK(fuzz_in(pr->content_type, body, len) && fuzz_in(pr->reason_string, body, len));
}

static inline void fuzz_check_packet(const struct codec_packet *p, const uint8_t *body, uint32_t len)
{
	uint32_t pos = 0, n = 0;

	switch (p->type) {
	case CODEC_CONNECT:
		fuzz_check_props(&p->u.connect.props, body, len);
		fuzz_check_props(&p->u.connect.will_props, body, len);
		FUZZ_CHECK(fuzz_in(p->u.connect.client_id, body, len));
		FUZZ_CHECK(fuzz_in(p->u.connect.password, body, len));
		FUZZ_CHECK(p->version >= CODEC_V31 && p->version <= CODEC_V5);
		FUZZ_CHECK(codec_utf8_valid(p->u.connect.client_id.p, p->u.connect.client_id.len));
		break;
	case CODEC_PUBLISH:
		fuzz_check_props(&p->u.publish.props, body, len);
		FUZZ_CHECK(fuzz_in(p->u.publish.topic, body, len));
		FUZZ_CHECK(fuzz_in(p->u.publish.payload, body, len));
		FUZZ_CHECK(p->u.publish.qos <= 2);
		FUZZ_CHECK(p->u.publish.topic.len == 0 ||
			   codec_topic_name_valid(p->u.publish.topic.p, p->u.publish.topic.len));
		break;
	case CODEC_SUBSCRIBE: {
		struct codec_sub_entry e;
		fuzz_check_props(&p->u.subscribe.props, body, len);
		while (codec_subscribe_next(&p->u.subscribe, &pos, &e)) {
			FUZZ_CHECK(codec_topic_filter_valid(e.filter.p, e.filter.len));
			FUZZ_CHECK(e.qos <= 2 && e.retain_handling <= 2);
			n++;
		}
		FUZZ_CHECK(n == p->u.subscribe.count && n > 0);
		break;
	}
	case CODEC_UNSUBSCRIBE: {
		struct codec_buf f;
		fuzz_check_props(&p->u.unsubscribe.props, body, len);
		while (codec_unsubscribe_next(&p->u.unsubscribe, &pos, &f)) {
			FUZZ_CHECK(codec_topic_filter_valid(f.p, f.len));
			n++;
		}
		FUZZ_CHECK(n == p->u.unsubscribe.count && n > 0);
		break;
	}
	case CODEC_CONNACK:
		fuzz_check_props(&p->u.connack.props, body, len);
		break;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK:
		fuzz_check_props(&p->u.suback.props, body, len);
		FUZZ_CHECK(p->u.suback.count == 0 ||
			   (p->u.suback.codes >= body && p->u.suback.codes + p->u.suback.count <= body + len));
		break;
	case CODEC_DISCONNECT:
	case CODEC_AUTH:
		fuzz_check_props(&p->u.disconnect.props, body, len);
		break;
	case CODEC_PINGREQ:
	case CODEC_PINGRESP:
		FUZZ_CHECK(len == 0);
		break;
	default:
		fuzz_check_props(&p->u.ack.props, body, len);
		FUZZ_CHECK(p->u.ack.packet_id != 0);
		break;
	}
}

/* Copies a body into a buffer of exactly its size, so that AddressSanitizer
 * sees any read past its end. */
static inline uint8_t *fuzz_copy(const uint8_t *p, uint32_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	FUZZ_CHECK(b != NULL);
	if (len)
		memcpy(b, p, len);
	return b;
}

#endif
