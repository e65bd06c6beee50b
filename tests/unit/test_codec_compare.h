/*
 * test_codec_compare.h - field-by-field equality of decoded packets, shared
 * by the unit tests and the round-trip fuzzer. Views are compared by
 * content (two decodes of the same bytes point into different buffers);
 * repeated properties and SUBSCRIBE entries are compared in order through
 * the codec's iterators, so a block whose bytes are ordered differently but
 * mean the same compares equal.
 *
 * Every function returns NULL when equal, else the name of the first field
 * that differs.
 */
#ifndef MIDGE_TEST_CODEC_COMPARE_H
#define MIDGE_TEST_CODEC_COMPARE_H

#include "codec/codec.h"

#include <string.h>

static inline int cmp_buf(struct codec_buf a, struct codec_buf b)
{
	if (a.len != b.len)
		return 1;
	return a.len && memcmp(a.p, b.p, a.len) != 0;
}

#define CMP_FIELD(cond, name)        \
	do {                         \
		if (cond)            \
			return name; \
	} while (0)

static inline const char *cmp_props(const struct codec_props *a, const struct codec_props *b)
{
	uint32_t pa = 0, pb = 0, ia, ib;
	struct codec_buf ka, va, kb, vb;
	int ra, rb;

	CMP_FIELD(a->present != b->present, "props.present");
#define P(id) CODEC_HAS_PROP(a, CODEC_PROP_##id)
	CMP_FIELD(P(PAYLOAD_FORMAT) && a->payload_format != b->payload_format, "payload_format");
	CMP_FIELD(P(MESSAGE_EXPIRY) && a->message_expiry != b->message_expiry, "message_expiry");
	CMP_FIELD(P(CONTENT_TYPE) && cmp_buf(a->content_type, b->content_type), "content_type");
	CMP_FIELD(P(RESPONSE_TOPIC) && cmp_buf(a->response_topic, b->response_topic),
		  "response_topic");
	CMP_FIELD(P(CORRELATION_DATA) && cmp_buf(a->correlation_data, b->correlation_data),
		  "correlation_data");
	CMP_FIELD(P(SUBSCRIPTION_ID) && a->sub_id != b->sub_id, "sub_id");
	CMP_FIELD(a->sub_id_count != b->sub_id_count, "sub_id_count");
	CMP_FIELD(P(SESSION_EXPIRY) && a->session_expiry != b->session_expiry, "session_expiry");
	CMP_FIELD(P(ASSIGNED_CLIENT_ID) && cmp_buf(a->assigned_client_id, b->assigned_client_id),
		  "assigned_client_id");
	CMP_FIELD(P(SERVER_KEEP_ALIVE) && a->server_keep_alive != b->server_keep_alive,
		  "server_keep_alive");
	CMP_FIELD(P(AUTH_METHOD) && cmp_buf(a->auth_method, b->auth_method), "auth_method");
	CMP_FIELD(P(AUTH_DATA) && cmp_buf(a->auth_data, b->auth_data), "auth_data");
	CMP_FIELD(P(REQUEST_PROBLEM_INFO) && a->request_problem_info != b->request_problem_info,
		  "request_problem_info");
	CMP_FIELD(P(WILL_DELAY) && a->will_delay != b->will_delay, "will_delay");
	CMP_FIELD(P(REQUEST_RESPONSE_INFO) && a->request_response_info != b->request_response_info,
		  "request_response_info");
	CMP_FIELD(P(RESPONSE_INFO) && cmp_buf(a->response_info, b->response_info), "response_info");
	CMP_FIELD(P(SERVER_REFERENCE) && cmp_buf(a->server_reference, b->server_reference),
		  "server_reference");
	CMP_FIELD(P(REASON_STRING) && cmp_buf(a->reason_string, b->reason_string), "reason_string");
	CMP_FIELD(P(RECEIVE_MAX) && a->receive_max != b->receive_max, "receive_max");
	CMP_FIELD(P(TOPIC_ALIAS_MAX) && a->topic_alias_max != b->topic_alias_max, "topic_alias_max");
	CMP_FIELD(P(TOPIC_ALIAS) && a->topic_alias != b->topic_alias, "topic_alias");
	CMP_FIELD(P(MAX_QOS) && a->max_qos != b->max_qos, "max_qos");
	CMP_FIELD(P(RETAIN_AVAILABLE) && a->retain_available != b->retain_available,
		  "retain_available");
	CMP_FIELD(P(MAX_PACKET_SIZE) && a->max_packet_size != b->max_packet_size, "max_packet_size");
	CMP_FIELD(P(WILDCARD_SUB_AVAILABLE) && a->wildcard_sub_available != b->wildcard_sub_available,
		  "wildcard_sub_available");
	CMP_FIELD(P(SUB_ID_AVAILABLE) && a->sub_id_available != b->sub_id_available,
		  "sub_id_available");
	CMP_FIELD(P(SHARED_SUB_AVAILABLE) && a->shared_sub_available != b->shared_sub_available,
		  "shared_sub_available");
#undef P
	CMP_FIELD(a->user_count != b->user_count, "user_count");
	for (;;) {
		ra = codec_props_next_user(a, &pa, &ka, &va);
		rb = codec_props_next_user(b, &pb, &kb, &vb);
		CMP_FIELD(ra != rb, "user property count");
		if (!ra)
			break;
		CMP_FIELD(cmp_buf(ka, kb) || cmp_buf(va, vb), "user property");
	}
	pa = pb = 0;
	for (;;) {
		ra = codec_props_next_sub_id(a, &pa, &ia);
		rb = codec_props_next_sub_id(b, &pb, &ib);
		CMP_FIELD(ra != rb, "sub id count");
		if (!ra)
			break;
		CMP_FIELD(ia != ib, "sub id");
	}
	return NULL;
}

/* SUBSCRIBE or UNSUBSCRIBE (a and b of one type): packet id, count, then
 * both lists in step through the codec's iterators, UNSUBSCRIBE filters
 * read as entries with options 0, then the properties. */
static inline const char *cmp_list(const struct codec_packet *a, const struct codec_packet *b)
{
	const bool sub = a->type == CODEC_SUBSCRIBE;
	const struct codec_packet *p[2] = {a, b};
	uint32_t pos[2] = {0, 0};
	struct codec_sub_entry e[2];
	int more[2];

	if (sub) {
		CMP_FIELD(a->u.subscribe.packet_id != b->u.subscribe.packet_id, "packet_id");
		CMP_FIELD(a->u.subscribe.count != b->u.subscribe.count, "count");
	} else {
		CMP_FIELD(a->u.unsubscribe.packet_id != b->u.unsubscribe.packet_id, "packet_id");
		CMP_FIELD(a->u.unsubscribe.count != b->u.unsubscribe.count, "count");
	}
	for (;;) {
		for (int i = 0; i < 2; i++) {
			memset(&e[i], 0, sizeof e[i]);
			more[i] = sub ? codec_subscribe_next(&p[i]->u.subscribe, &pos[i], &e[i])
				      : codec_unsubscribe_next(&p[i]->u.unsubscribe, &pos[i],
							       &e[i].filter);
		}
		CMP_FIELD(more[0] != more[1], "entries");
		if (!more[0])
			break;
		CMP_FIELD(cmp_buf(e[0].filter, e[1].filter) || e[0].options != e[1].options, "entry");
	}
	return sub ? cmp_props(&a->u.subscribe.props, &b->u.subscribe.props)
		   : cmp_props(&a->u.unsubscribe.props, &b->u.unsubscribe.props);
}

static inline const char *cmp_packet(const struct codec_packet *a, const struct codec_packet *b)
{
	const char *d;

	CMP_FIELD(a->type != b->type, "type");
	CMP_FIELD(a->flags != b->flags, "flags");
	CMP_FIELD(a->version != b->version, "version");
	switch (a->type) {
	case CODEC_CONNECT: {
		const struct codec_connect *x = &a->u.connect, *y = &b->u.connect;
		CMP_FIELD(cmp_buf(x->protocol_name, y->protocol_name), "protocol_name");
		CMP_FIELD(x->level != y->level || x->flags != y->flags, "level/flags");
		CMP_FIELD(x->clean_start != y->clean_start || x->will != y->will ||
				  x->will_qos != y->will_qos || x->will_retain != y->will_retain ||
				  x->has_username != y->has_username ||
				  x->has_password != y->has_password,
			  "connect flags");
		CMP_FIELD(x->keep_alive != y->keep_alive, "keep_alive");
		if ((d = cmp_props(&x->props, &y->props)) != NULL)
			return d;
		CMP_FIELD(cmp_buf(x->client_id, y->client_id), "client_id");
		if ((d = cmp_props(&x->will_props, &y->will_props)) != NULL)
			return d;
		CMP_FIELD(cmp_buf(x->will_topic, y->will_topic), "will_topic");
		CMP_FIELD(cmp_buf(x->will_payload, y->will_payload), "will_payload");
		CMP_FIELD(cmp_buf(x->username, y->username), "username");
		CMP_FIELD(cmp_buf(x->password, y->password), "password");
		return NULL;
	}
	case CODEC_CONNACK:
		CMP_FIELD(a->u.connack.session_present != b->u.connack.session_present,
			  "session_present");
		CMP_FIELD(a->u.connack.rc != b->u.connack.rc, "rc");
		return cmp_props(&a->u.connack.props, &b->u.connack.props);
	case CODEC_PUBLISH: {
		const struct codec_publish *x = &a->u.publish, *y = &b->u.publish;
		CMP_FIELD(x->qos != y->qos || x->dup != y->dup || x->retain != y->retain,
			  "publish flags");
		CMP_FIELD(cmp_buf(x->topic, y->topic), "topic");
		CMP_FIELD(x->packet_id != y->packet_id, "packet_id");
		CMP_FIELD(cmp_buf(x->payload, y->payload), "payload");
		return cmp_props(&x->props, &y->props);
	}
	case CODEC_SUBSCRIBE:
	case CODEC_UNSUBSCRIBE:
		return cmp_list(a, b);
	case CODEC_SUBACK:
	case CODEC_UNSUBACK:
		CMP_FIELD(a->u.suback.packet_id != b->u.suback.packet_id, "packet_id");
		CMP_FIELD(a->u.suback.count != b->u.suback.count, "count");
		CMP_FIELD(a->u.suback.count &&
				  memcmp(a->u.suback.codes, b->u.suback.codes, a->u.suback.count),
			  "codes");
		return cmp_props(&a->u.suback.props, &b->u.suback.props);
	case CODEC_PINGREQ:
	case CODEC_PINGRESP:
		return NULL;
	case CODEC_DISCONNECT:
	case CODEC_AUTH:
		CMP_FIELD(a->u.disconnect.rc != b->u.disconnect.rc, "rc");
		return cmp_props(&a->u.disconnect.props, &b->u.disconnect.props);
	default:
		CMP_FIELD(a->u.ack.packet_id != b->u.ack.packet_id, "packet_id");
		CMP_FIELD(a->u.ack.rc != b->u.ack.rc, "rc");
		return cmp_props(&a->u.ack.props, &b->u.ack.props);
	}
}

#endif
