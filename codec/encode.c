/*
 * encode.c - the MQTT encoder: exact sizes, writes into caller buffers.
 *
 * One routine describes each packet; it runs twice, first only counting
 * (w == NULL) and then writing, so the size and the bytes cannot disagree.
 */
#include "codec/codec.h"
#include "codec/internal.h"

#include <stddef.h>
#include <string.h>

struct out {
	uint8_t *w; /* NULL: count only */
	size_t n;
	bool ok;
	/* Property block sizes, measured in the counting pass and reused, in
	 * the same order, by the writing pass (a CONNECT has two blocks). */
	size_t psize[2];
	unsigned pidx;
};

static void put8(struct out *o, uint8_t v)
{
	if (o->w)
		o->w[o->n] = v;
	o->n++;
}

static void put16(struct out *o, uint16_t v)
{
	put8(o, (uint8_t)(v >> 8));
	put8(o, (uint8_t)v);
}

static void put32(struct out *o, uint32_t v)
{
	put16(o, (uint16_t)(v >> 16));
	put16(o, (uint16_t)v);
}

static void put_varint(struct out *o, uint32_t v)
{
	if (v > CODEC_MAX_REMAINING) {
		o->ok = false;
		return;
	}
	do {
		uint8_t digit = v & 0x7F;
		v >>= 7;
		put8(o, v ? (uint8_t)(digit | 0x80) : digit);
	} while (v);
}

static void put_bytes(struct out *o, const uint8_t *p, size_t len)
{
	if (o->w && len)
		memcpy(o->w + o->n, p, len);
	o->n += len;
}

/* A two-byte length and the bytes: UTF-8 strings and binary data. */
static void put_counted(struct out *o, const uint8_t *p, size_t len)
{
	if (len > 65535) {
		o->ok = false;
		return;
	}
	put16(o, (uint16_t)len);
	put_bytes(o, p, len);
}

static void put_buf(struct out *o, struct codec_buf b)
{
	put_counted(o, b.p, b.len);
}

size_t codec_varint_size(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Where each fixed-size numeric property (byte, two or four bytes) lives in
 * struct codec_props: one table, the reverse of the decoder's prop_byte /
 * prop_u16 / prop_u32, read without a branch per identifier. The field's
 * width is the identifier's kind (codec_prop_kind). */
#define OFF(field) offsetof(struct codec_props, field)
static const uint16_t prop_number_offset[CODEC_PROP_ID_MAX + 1] = {
	[CODEC_PROP_PAYLOAD_FORMAT] = OFF(payload_format),
	[CODEC_PROP_REQUEST_PROBLEM_INFO] = OFF(request_problem_info),
	[CODEC_PROP_REQUEST_RESPONSE_INFO] = OFF(request_response_info),
	[CODEC_PROP_MAX_QOS] = OFF(max_qos),
	[CODEC_PROP_RETAIN_AVAILABLE] = OFF(retain_available),
	[CODEC_PROP_WILDCARD_SUB_AVAILABLE] = OFF(wildcard_sub_available),
	[CODEC_PROP_SUB_ID_AVAILABLE] = OFF(sub_id_available),
	[CODEC_PROP_SHARED_SUB_AVAILABLE] = OFF(shared_sub_available),
	[CODEC_PROP_SERVER_KEEP_ALIVE] = OFF(server_keep_alive),
	[CODEC_PROP_RECEIVE_MAX] = OFF(receive_max),
	[CODEC_PROP_TOPIC_ALIAS_MAX] = OFF(topic_alias_max),
	[CODEC_PROP_TOPIC_ALIAS] = OFF(topic_alias),
	[CODEC_PROP_MESSAGE_EXPIRY] = OFF(message_expiry),
	[CODEC_PROP_SESSION_EXPIRY] = OFF(session_expiry),
	[CODEC_PROP_WILL_DELAY] = OFF(will_delay),
	[CODEC_PROP_MAX_PACKET_SIZE] = OFF(max_packet_size),
};
#undef OFF

static inline const void *prop_number(const struct codec_props *pr, unsigned id)
{
	return (const char *)pr + prop_number_offset[id];
}

static struct codec_buf prop_buf_value(const struct codec_props *pr, unsigned id)
{
	switch (id) {
	case CODEC_PROP_CONTENT_TYPE: return pr->content_type;
	case CODEC_PROP_RESPONSE_TOPIC: return pr->response_topic;
	case CODEC_PROP_CORRELATION_DATA: return pr->correlation_data;
	case CODEC_PROP_ASSIGNED_CLIENT_ID: return pr->assigned_client_id;
	case CODEC_PROP_AUTH_METHOD: return pr->auth_method;
	case CODEC_PROP_AUTH_DATA: return pr->auth_data;
	case CODEC_PROP_RESPONSE_INFO: return pr->response_info;
	case CODEC_PROP_SERVER_REFERENCE: return pr->server_reference;
	default: return pr->reason_string;
	}
}

/* Subscription identifiers: from sub_ids when given, else from raw, else
 * the single sub_id field (a block built by hand). */
static void put_sub_ids(struct out *o, const struct codec_props *pr)
{
	uint32_t pos = 0, id = 0;
	int found = 0;

	if (pr->sub_ids) {
		for (uint32_t i = 0; i < pr->sub_id_count; i++) {
			put8(o, CODEC_PROP_SUBSCRIPTION_ID);
			put_varint(o, pr->sub_ids[i]);
		}
		return;
	}
	while (codec_props_next_sub_id(pr, &pos, &id)) {
		put8(o, CODEC_PROP_SUBSCRIPTION_ID);
		put_varint(o, id);
		found = 1;
	}
	if (!found) {
		put8(o, CODEC_PROP_SUBSCRIPTION_ID);
		put_varint(o, pr->sub_id);
	}
}

/* The properties without their length prefix, in identifier order. */
static void put_props_body(struct out *o, const struct codec_props *pr)
{
	uint64_t left = pr->present & ((CODEC_PROP_BIT(CODEC_PROP_ID_MAX) << 1) - 1);
	uint32_t pos = 0;
	struct codec_buf k, v;

	for (unsigned id = 1; left >> id; id++) {
		if (!(left & CODEC_PROP_BIT(id)))
			continue;
		switch (codec_prop_kind[id]) {
		case CODEC_KIND_BYTE:
			put8(o, (uint8_t)id);
			put8(o, *(const uint8_t *)prop_number(pr, id));
			break;
		case CODEC_KIND_U16:
			put8(o, (uint8_t)id);
			put16(o, *(const uint16_t *)prop_number(pr, id));
			break;
		case CODEC_KIND_U32:
			put8(o, (uint8_t)id);
			put32(o, *(const uint32_t *)prop_number(pr, id));
			break;
		case CODEC_KIND_VARINT:
			put_sub_ids(o, pr);
			break;
		case CODEC_KIND_UTF8:
		case CODEC_KIND_BINARY:
			put8(o, (uint8_t)id);
			put_buf(o, prop_buf_value(pr, id));
			break;
		case CODEC_KIND_PAIR:
			while (codec_props_next_user(pr, &pos, &k, &v)) {
				put8(o, CODEC_PROP_USER_PROPERTY);
				put_buf(o, k);
				put_buf(o, v);
			}
			break;
		default:
			break;
		}
	}
}

static size_t props_body_size(const struct codec_props *pr, bool *ok)
{
	struct out o = {NULL, 0, true, {0, 0}, 0};

	if (pr->present)
		put_props_body(&o, pr);
	if (!o.ok || o.n > CODEC_MAX_REMAINING)
		*ok = false;
	return o.n;
}

/* The size of a packet's next property block without its length prefix:
 * measured in the counting pass, remembered for the writing pass. */
static size_t props_len(struct out *o, const struct codec_props *pr)
{
	size_t n;

	if (o->w && o->pidx < 2)
		return o->psize[o->pidx++];
	n = props_body_size(pr, &o->ok);
	if (o->pidx < 2)
		o->psize[o->pidx++] = n;
	return n;
}

static void put_props_len(struct out *o, const struct codec_props *pr, size_t n)
{
	put_varint(o, (uint32_t)(n > CODEC_MAX_REMAINING ? CODEC_MAX_REMAINING + 1u : n));
	if (!o->ok || !n)
		return;
	if (o->w)
		put_props_body(o, pr);
	else
		o->n += n;
}

static void put_props(struct out *o, const struct codec_props *pr)
{
	put_props_len(o, pr, props_len(o, pr));
}

size_t codec_props_size(const struct codec_props *props)
{
	bool ok = true;
	size_t n = props_body_size(props, &ok);

	if (!ok)
		return 0;
	return codec_varint_size((uint32_t)n) + n;
}

static uint8_t version_of(const struct codec_packet *pkt)
{
	return (pkt->version == CODEC_V31 || pkt->version == CODEC_V5) ? pkt->version : CODEC_V311;
}

static uint8_t first_byte(const struct codec_packet *pkt)
{
	uint8_t t = pkt->type;
	const struct codec_publish *pub = &pkt->u.publish;

	switch (t) {
	case CODEC_PUBLISH:
		return (uint8_t)(0x30 | (pub->dup ? 0x08 : 0) | ((pub->qos & 3) << 1) |
				 (pub->retain ? 1 : 0));
	case CODEC_PUBREL:
	case CODEC_SUBSCRIBE:
	case CODEC_UNSUBSCRIBE:
		return (uint8_t)(t << 4 | 0x02);
	default:
		return (uint8_t)(t << 4);
	}
}

static void put_connect(struct out *o, const struct codec_connect *c, uint8_t ver)
{
	uint8_t flags = 0;

	if (ver == CODEC_V31)
		put_counted(o, (const uint8_t *)"MQIsdp", 6);
	else
		put_counted(o, (const uint8_t *)"MQTT", 4);
	/* Mosquitto's bridge bit (try_private) before MQTT 5 */
	put8(o, (uint8_t)(ver | (c->bridge && ver != CODEC_V5 ? 0x80 : 0)));
	if (c->clean_start)
		flags |= 0x02;
	if (c->will)
		flags |= (uint8_t)(0x04 | (c->will_qos & 3) << 3 | (c->will_retain ? 0x20 : 0));
	if (c->has_password)
		flags |= 0x40;
	if (c->has_username)
		flags |= 0x80;
	put8(o, flags);
	put16(o, c->keep_alive);
	if (ver == CODEC_V5)
		put_props(o, &c->props);
	put_buf(o, c->client_id);
	if (c->will) {
		if (ver == CODEC_V5)
			put_props(o, &c->will_props);
		put_buf(o, c->will_topic);
		put_buf(o, c->will_payload);
	}
	if (c->has_username)
		put_buf(o, c->username);
	if (c->has_password)
		put_buf(o, c->password);
}

/* A v5 acknowledgement may stop after the packet id (reason 0, no
 * properties) or after the reason code (no properties): 3.4.2.1. */
static void put_rc_props(struct out *o, uint8_t rc, const struct codec_props *pr)
{
	size_t n = props_len(o, pr);

	if (rc == 0 && n == 0)
		return;
	put8(o, rc);
	if (n)
		put_props_len(o, pr, n);
}

static void put_subscribe(struct out *o, const struct codec_subscribe *s, uint8_t ver)
{
	put16(o, s->packet_id);
	if (ver == CODEC_V5)
		put_props(o, &s->props);
	if (!s->entries) {
		put_bytes(o, s->list.p, s->list.len);
		return;
	}
	for (uint32_t i = 0; i < s->count; i++) {
		const struct codec_sub_entry *e = &s->entries[i];
		uint8_t opt = e->qos & 3;

		if (ver == CODEC_V5)
			opt |= (uint8_t)((e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
					 (e->retain_handling & 3) << 4);
		put_buf(o, e->filter);
		put8(o, opt);
	}
}

static void put_unsubscribe(struct out *o, const struct codec_unsubscribe *u, uint8_t ver)
{
	put16(o, u->packet_id);
	if (ver == CODEC_V5)
		put_props(o, &u->props);
	if (!u->filters) {
		put_bytes(o, u->list.p, u->list.len);
		return;
	}
	for (uint32_t i = 0; i < u->count; i++)
		put_buf(o, u->filters[i]);
}

/* The body of pkt, optionally without a PUBLISH payload (still counted in
 * the remaining length by the caller). */
static void put_body(struct out *o, const struct codec_packet *pkt, bool payload)
{
	uint8_t ver = version_of(pkt);
	bool v5 = ver == CODEC_V5;

	switch (pkt->type) {
	case CODEC_CONNECT:
		put_connect(o, &pkt->u.connect, ver);
		break;
	case CODEC_CONNACK:
		put8(o, pkt->u.connack.session_present ? 1 : 0);
		put8(o, pkt->u.connack.rc);
		if (v5)
			put_props(o, &pkt->u.connack.props);
		break;
	case CODEC_PUBLISH:
		put_buf(o, pkt->u.publish.topic);
		if (pkt->u.publish.qos)
			put16(o, pkt->u.publish.packet_id);
		if (v5)
			put_props(o, &pkt->u.publish.props);
		if (payload)
			put_bytes(o, pkt->u.publish.payload.p, pkt->u.publish.payload.len);
		break;
	case CODEC_PUBACK:
	case CODEC_PUBREC:
	case CODEC_PUBREL:
	case CODEC_PUBCOMP:
		put16(o, pkt->u.ack.packet_id);
		if (v5)
			put_rc_props(o, pkt->u.ack.rc, &pkt->u.ack.props);
		break;
	case CODEC_SUBSCRIBE:
		put_subscribe(o, &pkt->u.subscribe, ver);
		break;
	case CODEC_UNSUBSCRIBE:
		put_unsubscribe(o, &pkt->u.unsubscribe, ver);
		break;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK:
		put16(o, pkt->u.suback.packet_id);
		if (v5)
			put_props(o, &pkt->u.suback.props);
		if (v5 || pkt->type == CODEC_SUBACK)
			put_bytes(o, pkt->u.suback.codes, pkt->u.suback.count);
		break;
	case CODEC_PINGREQ:
	case CODEC_PINGRESP:
		break;
	case CODEC_DISCONNECT:
		if (v5)
			put_rc_props(o, pkt->u.disconnect.rc, &pkt->u.disconnect.props);
		break;
	case CODEC_AUTH:
		if (!v5)
			o->ok = false;
		else
			put_rc_props(o, pkt->u.disconnect.rc, &pkt->u.disconnect.props);
		break;
	default:
		o->ok = false;
		break;
	}
}

/* Remaining length of pkt, or -1 when it cannot be encoded. */
static int64_t body_size(const struct codec_packet *pkt, struct out *o)
{
	o->w = NULL;
	o->n = 0;
	o->ok = true;
	o->pidx = 0;
	put_body(o, pkt, true);
	if (!o->ok || o->n > CODEC_MAX_REMAINING)
		return -1;
	return (int64_t)o->n;
}

size_t codec_encode_size(const struct codec_packet *pkt)
{
	struct out o;
	int64_t n = body_size(pkt, &o);

	if (n < 0)
		return 0;
	return 1 + codec_varint_size((uint32_t)n) + (size_t)n;
}

static size_t encode(const struct codec_packet *pkt, uint8_t *buf, size_t cap, bool payload)
{
	struct out o;
	int64_t n = body_size(pkt, &o);
	size_t head, total;

	if (n < 0)
		return 0;
	head = 1 + codec_varint_size((uint32_t)n);
	total = head + (size_t)n;
	if (!payload)
		total -= pkt->u.publish.payload.len;
	if (total > cap)
		return 0;
	o.w = buf;
	o.n = 0;
	o.ok = true;
	o.pidx = 0;
	put8(&o, first_byte(pkt));
	put_varint(&o, (uint32_t)n);
	put_body(&o, pkt, payload);
	return o.n;
}

size_t codec_encode(const struct codec_packet *pkt, uint8_t *buf, size_t cap)
{
	return encode(pkt, buf, cap, true);
}

size_t codec_encode_publish_head(const struct codec_packet *pkt, uint8_t *buf, size_t cap)
{
	if (pkt->type != CODEC_PUBLISH)
		return 0;
	return encode(pkt, buf, cap, false);
}
