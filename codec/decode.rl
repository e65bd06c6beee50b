/*
 * decode.rl - the host side of the MQTT decoder: the actions the grammar in
 * codec/mqtt.rl names, the static inline helpers they call, and the public
 * functions (codec_frame_scan, codec_decode, codec_props_decode*, the text
 * validators). Compile with `ragel -G2`.
 *
 * Each machine here is one section of mqtt.rl plus its actions. An action is
 * one to three lines calling a helper; a helper returns 0 or a negated
 * reason code, which stops the machine (fbreak) and is what the public
 * function returns. Counted fields are consumed by the helpers after a
 * bounds check and skipped with fexec. Everything decoded is a view into
 * the caller's buffer. Nothing here allocates.
 */
#include "codec/codec.h"
#include "codec/internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* UTF-8, topic names, topic filters                                  */

%%{
	machine utf8;
	include mqtt_utf8 "mqtt.rl";
	write data noerror nofinal noentry;
}%%

%%{
	machine topic_name;
	include mqtt_topic_name "mqtt.rl";
	write data noerror nofinal noentry;
}%%

%%{
	machine topic_filter;
	include mqtt_topic_filter "mqtt.rl";
	write data noerror nofinal noentry;
}%%

/*
 * Fast paths, eight bytes at a time: most strings are plain ASCII. Each
 * returns how many leading bytes are certainly fine (ASCII, not NUL, and
 * for topics not a wildcard); the Ragel machine takes over from there, so
 * the machine stays the one definition of what is valid.
 */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define HAS_ZERO(v) (((v) - ONES) & ~(v) & HIGHS)

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline size_t ascii_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = load64(p + i);
		if ((v & HIGHS) || HAS_ZERO(v))
			break;
	}
	while (i < n && p[i] >= 0x01 && p[i] <= 0x7F)
		i++;
	return i;
}

static inline size_t topic_ascii_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = load64(p + i);
		if ((v & HIGHS) || HAS_ZERO(v) || HAS_ZERO(v ^ (ONES * '+')) ||
		    HAS_ZERO(v ^ (ONES * '#')))
			break;
	}
	while (i < n && p[i] >= 0x01 && p[i] <= 0x7F && p[i] != '+' && p[i] != '#')
		i++;
	return i;
}

static const int utf8_first_final_state = %%{ machine utf8; write first_final; }%%;

bool codec_utf8_valid(const uint8_t *p, size_t n)
{
	const uint8_t *pe;
	int cs;

	if (n == 0) /* also spares NULL + 0 */
		return true;
	pe = p + n;
	p += ascii_prefix(p, n);
	if (p == pe)
		return true;
	%% machine utf8;
	%% write init;
	%% write exec;
	return cs >= utf8_first_final_state && p == pe;
}

static const int topic_name_first_final_state = %%{ machine topic_name; write first_final; }%%;

bool codec_topic_name_valid(const uint8_t *p, size_t n)
{
	const uint8_t *pe;
	int cs;

	if (n == 0 || n > 65535)
		return false;
	pe = p + n;
	p += topic_ascii_prefix(p, n);
	if (p == pe)
		return true;
	%% machine topic_name;
	%% write init;
	%% write exec;
	return cs >= topic_name_first_final_state && p == pe;
}

static const int topic_filter_first_final_state = %%{ machine topic_filter; write first_final; }%%;

bool codec_topic_filter_valid(const uint8_t *p, size_t n)
{
	const uint8_t *pe;
	int cs;

	if (n == 0 || n > 65535) /* [MQTT-4.7.3-1] */
		return false;
	pe = p + n;
	%% machine topic_filter;
	%% write init;
	%% write exec;
	return cs >= topic_filter_first_final_state && p == pe;
}

/* ------------------------------------------------------------------ */
/* Fixed header                                                       */

/* One digit of a variable byte integer, least significant first (1.5.5);
 * the grammar bounds the digits to four. */
static inline void vbi_add(uint32_t *v, unsigned *shift, uint8_t c)
{
	*v |= (uint32_t)(c & 0x7F) << *shift;
	*shift += 7;
}

/*
 * The legal first bytes, bit n of entry t set when flags n are legal for
 * packet type t: the flags the specification fixes per type
 * [MQTT-2.1.3-1] (5), [MQTT-2.2.2-1] [MQTT-2.2.2-2] (3.1.1). PUBLISH may not
 * carry QoS 3 [MQTT-3.3.1-4] nor DUP with QoS 0 [MQTT-3.3.1-2]; PUBREL,
 * SUBSCRIBE and UNSUBSCRIBE carry 0b0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1]
 * [MQTT-3.10.1-1]; type 0 is reserved. AUTH is legal here: that it is
 * reserved before MQTT 5 depends on the connection, not on the byte.
 *
 * The one definition: the frame grammar reads it as a condition on its
 * first byte (mqtt.rl), codec_decode() for the first byte it is handed. A
 * table lookup is also cheaper than the compare tree a byte alphabet
 * compiles to.
 */
static const uint16_t legal_flags[16] = {
	[CODEC_CONNECT] = 1u << 0,
	[CODEC_CONNACK] = 1u << 0,
	[CODEC_PUBLISH] = 0x3C3F, /* QoS 0..2 with DUP only when QoS > 0 */
	[CODEC_PUBACK] = 1u << 0,
	[CODEC_PUBREC] = 1u << 0,
	[CODEC_PUBREL] = 1u << 2,
	[CODEC_PUBCOMP] = 1u << 0,
	[CODEC_SUBSCRIBE] = 1u << 2,
	[CODEC_SUBACK] = 1u << 0,
	[CODEC_UNSUBSCRIBE] = 1u << 2,
	[CODEC_UNSUBACK] = 1u << 0,
	[CODEC_PINGREQ] = 1u << 0,
	[CODEC_PINGRESP] = 1u << 0,
	[CODEC_DISCONNECT] = 1u << 0,
	[CODEC_AUTH] = 1u << 0,
};

static inline bool first_byte_legal(uint8_t first)
{
	return (legal_flags[first >> 4] >> (first & 0x0F)) & 1u;
}

%%{
	machine frame;
	alphtype unsigned char;

	action legal_first { first_byte_legal(fc) }

	action save_first { fr->first = fc; }
	action add_len_digit { vbi_add(&len, &shift, fc); }
	action stop_header { fbreak; }

	include mqtt_frame "mqtt.rl";
	write data noerror nofinal noentry;
}%%

static const int frame_first_final_state = %%{ write first_final; }%%;

int codec_frame_scan(const uint8_t *p, size_t n, uint32_t max_packet, struct codec_frame *fr)
{
	const uint8_t *start = p;
	const uint8_t *pe;
	uint32_t len = 0;
	unsigned shift = 0;
	int cs;

	if (n == 0) /* also spares NULL + 0 */
		return CODEC_PARTIAL;
	pe = p + (n < CODEC_MAX_FIXED_HEADER ? n : CODEC_MAX_FIXED_HEADER);
	%% write init;
	%% write exec;
	if (cs == 0)
		return -MQTT_RC_MALFORMED;
	if (cs < frame_first_final_state)
		return CODEC_PARTIAL;
	fr->type = (uint8_t)(fr->first >> 4);
	fr->flags = (uint8_t)(fr->first & 0x0F);
	fr->header_len = (uint8_t)(p - start);
	fr->remaining = len;
	if (max_packet && (uint64_t)fr->header_len + len > max_packet)
		return -MQTT_RC_PACKET_TOO_LARGE;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Property blocks                                                    */

/* Decoding state of one property block. */
struct pstate {
	struct codec_props *out;
	uint64_t allowed;
	uint64_t repeat; /* identifiers that may appear more than once */
	uint8_t id;      /* identifier of the property being read */
	uint32_t v;      /* variable byte integer being read */
	unsigned shift;
	uint32_t flen; /* length of the counted field just read */
};

/* An identifier not valid for the packet type is malformed (2.2.2.2: "A
 * Control Packet which contains an Identifier which is not valid for its
 * packet type ... is a Malformed Packet"); a second copy of one that may
 * appear once is a protocol error (3.x.2.x: "It is a Protocol Error to
 * include ... more than once"). */
static inline int prop_begin(struct pstate *d, uint8_t id)
{
	uint64_t bit = CODEC_PROP_BIT(id);

	if (!(d->allowed & bit))
		return -MQTT_RC_MALFORMED;
	if ((d->out->present & bit) && !(d->repeat & bit))
		return -MQTT_RC_PROTOCOL_ERROR;
	d->out->present |= bit;
	d->id = id;
	return 0;
}

/* Byte properties take 0 or 1 only (Maximum QoS too: QoS 2 is expressed by
 * its absence); "It is a Protocol Error to include a value other than 0 or
 * 1" (3.1.2.11.6, 3.1.2.11.7, 3.2.2.3.4 ...). Payload Format has no other
 * defined value either (3.3.2.3.2), so it is treated the same way. */
static inline int prop_byte(struct pstate *d, uint8_t v)
{
	struct codec_props *o = d->out;

	if (v > 1)
		return -MQTT_RC_PROTOCOL_ERROR;
	switch (d->id) {
	case CODEC_PROP_PAYLOAD_FORMAT: o->payload_format = v; break;
	case CODEC_PROP_REQUEST_PROBLEM_INFO: o->request_problem_info = v; break;
	case CODEC_PROP_REQUEST_RESPONSE_INFO: o->request_response_info = v; break;
	case CODEC_PROP_MAX_QOS: o->max_qos = v; break;
	case CODEC_PROP_RETAIN_AVAILABLE: o->retain_available = v; break;
	case CODEC_PROP_WILDCARD_SUB_AVAILABLE: o->wildcard_sub_available = v; break;
	case CODEC_PROP_SUB_ID_AVAILABLE: o->sub_id_available = v; break;
	default: o->shared_sub_available = v; break;
	}
	return 0;
}

static inline int prop_u16(struct pstate *d, uint16_t v)
{
	struct codec_props *o = d->out;

	switch (d->id) {
	case CODEC_PROP_SERVER_KEEP_ALIVE: o->server_keep_alive = v; break;
	case CODEC_PROP_RECEIVE_MAX:
		if (v == 0) /* 3.1.2.11.3, 3.2.2.3.3 */
			return -MQTT_RC_PROTOCOL_ERROR;
		o->receive_max = v;
		break;
	case CODEC_PROP_TOPIC_ALIAS_MAX: o->topic_alias_max = v; break;
	default:
		if (v == 0) /* 3.3.2.3.4: a Topic Alias of 0 is not permitted */
			return -MQTT_RC_TOPIC_ALIAS_INVALID;
		o->topic_alias = v;
		break;
	}
	return 0;
}

static inline int prop_u32(struct pstate *d, uint32_t v)
{
	struct codec_props *o = d->out;

	switch (d->id) {
	case CODEC_PROP_MESSAGE_EXPIRY: o->message_expiry = v; break;
	case CODEC_PROP_SESSION_EXPIRY: o->session_expiry = v; break;
	case CODEC_PROP_WILL_DELAY: o->will_delay = v; break;
	default:
		if (v == 0) /* 3.1.2.11.4, 3.2.2.3.6 */
			return -MQTT_RC_PROTOCOL_ERROR;
		o->max_packet_size = v;
		break;
	}
	return 0;
}

/* A counted field at p[1..]: its two length bytes end at p. */
static inline int prop_counted(struct pstate *d, const uint8_t *p, const uint8_t *pe,
			       struct codec_buf *b)
{
	uint32_t len = codec_get16(p - 1);

	if (len > (uint32_t)(pe - p - 1))
		return -MQTT_RC_MALFORMED;
	d->flen = len;
	if (b) {
		b->p = p + 1;
		b->len = len;
	}
	return 0;
}

static inline int prop_string(struct pstate *d, const uint8_t *p, const uint8_t *pe)
{
	struct codec_props *o = d->out;
	struct codec_buf *b;
	int rc;

	switch (d->id) {
	case CODEC_PROP_CONTENT_TYPE: b = &o->content_type; break;
	case CODEC_PROP_RESPONSE_TOPIC: b = &o->response_topic; break;
	case CODEC_PROP_ASSIGNED_CLIENT_ID: b = &o->assigned_client_id; break;
	case CODEC_PROP_AUTH_METHOD: b = &o->auth_method; break;
	case CODEC_PROP_RESPONSE_INFO: b = &o->response_info; break;
	case CODEC_PROP_SERVER_REFERENCE: b = &o->server_reference; break;
	case CODEC_PROP_REASON_STRING: b = &o->reason_string; break;
	default: b = NULL; break; /* the key or value of a user property */
	}
	if ((rc = prop_counted(d, p, pe, b)) != 0)
		return rc;
	if (!codec_utf8_valid(p + 1, d->flen)) /* [MQTT-1.5.4-1] */
		return -MQTT_RC_MALFORMED;
	/* A Response Topic is a topic name: no wildcards [MQTT-3.3.2-14]. */
	if (d->id == CODEC_PROP_RESPONSE_TOPIC && !codec_topic_name_valid(p + 1, d->flen))
		return -MQTT_RC_PROTOCOL_ERROR;
	return 0;
}

static inline int prop_binary(struct pstate *d, const uint8_t *p, const uint8_t *pe)
{
	struct codec_props *o = d->out;

	return prop_counted(d, p, pe,
			    d->id == CODEC_PROP_AUTH_DATA ? &o->auth_data : &o->correlation_data);
}

/* Subscription identifiers run 1..268435455; 0 is a protocol error
 * (3.3.2.3.8, 3.8.2.1.2). The first one is kept, the rest are counted. */
static inline int prop_sub_id(struct pstate *d)
{
	if (d->v == 0)
		return -MQTT_RC_PROTOCOL_ERROR;
	if (d->out->sub_id_count++ == 0)
		d->out->sub_id = d->v;
	return 0;
}

%%{
	machine props;
	alphtype unsigned char;

	action begin_prop { if ((d->err = prop_begin(&d->ps, fc)) != 0) fbreak; }
	action set_byte { if ((d->err = prop_byte(&d->ps, fc)) != 0) fbreak; }
	action set_u16 { if ((d->err = prop_u16(&d->ps, codec_get16(p - 1))) != 0) fbreak; }
	action set_u32 { if ((d->err = prop_u32(&d->ps, codec_get32(p - 3))) != 0) fbreak; }
	action read_string {
		if ((d->err = prop_string(&d->ps, p, pe)) != 0) fbreak;
		fexec p + 1 + d->ps.flen;
	}
	action read_binary {
		if ((d->err = prop_binary(&d->ps, p, pe)) != 0) fbreak;
		fexec p + 1 + d->ps.flen;
	}
	action count_user { d->ps.out->user_count++; }
	action start_vbi { d->ps.v = 0; d->ps.shift = 0; }
	action add_vbi { vbi_add(&d->ps.v, &d->ps.shift, fc); }
	action set_sub_id { if ((d->err = prop_sub_id(&d->ps)) != 0) fbreak; }

	include mqtt_props "mqtt.rl";
	write data noerror nofinal noentry;
}%%

static const int props_first_final_state = %%{ write first_final; }%%;

struct props_run {
	struct pstate ps;
	int err;
};

/*
 * Decodes the property block p[0..len) into *out with the allowed set of
 * `slot` (a packet type, or 0 for will properties). *out is zeroed first
 * unless the caller already did (the body decoder clears the whole packet).
 */
static int props_decode(const uint8_t *p, uint32_t len, unsigned slot, struct codec_props *out,
			bool clear)
{
	struct props_run run;
	struct props_run *d = &run;
	const uint8_t *pe;
	int cs;

	if (clear)
		memset(out, 0, sizeof(*out));
	out->raw.p = p;
	out->raw.len = len;
	if (len == 0)
		return 0;
	pe = p + len;
	d->err = 0;
	d->ps.out = out;
	d->ps.allowed = codec_prop_allowed[slot];
	d->ps.repeat = CODEC_PROP_BIT(CODEC_PROP_USER_PROPERTY);
	if (slot == CODEC_PUBLISH)
		d->ps.repeat |= CODEC_PROP_BIT(CODEC_PROP_SUBSCRIPTION_ID);
	%% write init;
	%% write exec;
	if (d->err)
		return d->err;
	if (cs < props_first_final_state || p != pe)
		return -MQTT_RC_MALFORMED;
	return 0;
}

int codec_props_decode(const uint8_t *p, uint32_t len, uint8_t type, struct codec_props *out)
{
	if (type == 0 || type > CODEC_AUTH)
		return -MQTT_RC_MALFORMED;
	return props_decode(p, len, type, out, true);
}

int codec_props_decode_will(const uint8_t *p, uint32_t len, struct codec_props *out)
{
	return props_decode(p, len, 0, out, true);
}

/* ------------------------------------------------------------------ */
/* Packet bodies                                                      */

enum slot_kind { SLOT_UTF8, SLOT_BINARY, SLOT_TOPIC };

/* Decoding state of one packet body. */
struct dstate {
	struct codec_packet *out;
	int err;
	uint8_t version;
	uint8_t rc;
	uint16_t pid;
	uint32_t v; /* variable byte integer being read */
	unsigned shift;
	uint32_t flen;
	uint32_t count;
	struct codec_buf filter; /* the SUBSCRIBE filter whose options come next */
	const uint8_t *list;    /* where a SUBSCRIBE/UNSUBSCRIBE list or codes start */
	const uint8_t *payload; /* where a PUBLISH payload starts */
	struct codec_props *props;
	int next; /* CONNECT: the machine for what follows the keep alive */
	/* CONNECT payload: the fields the flags announce, in order */
	struct codec_buf *slot[5];
	uint8_t kind[5];
	uint8_t nslots, nslot;
};

static inline int body_counted(struct dstate *d, const uint8_t *p, const uint8_t *pe,
			       struct codec_buf *b)
{
	uint32_t len = codec_get16(p - 1);

	if (len > (uint32_t)(pe - p - 1)) /* a length that overruns the packet */
		return -MQTT_RC_MALFORMED;
	d->flen = len;
	b->p = p + 1;
	b->len = len;
	return 0;
}

/* [MQTT-2.3.1-1] / [MQTT-2.2.1-3]: packets that carry a packet identifier
 * carry a non-zero one. */
static inline int body_pid(struct dstate *d, const uint8_t *p)
{
	d->pid = codec_get16(p - 1);
	return d->pid ? 0 : -MQTT_RC_PROTOCOL_ERROR;
}

static inline int body_topic(struct dstate *d, const uint8_t *p, const uint8_t *pe)
{
	struct codec_buf *t = &d->out->u.publish.topic;
	int rc;

	if ((rc = body_counted(d, p, pe, t)) != 0)
		return rc;
	if (t->len == 0) /* allowed only with a Topic Alias, checked at the end */
		return 0;
	if (codec_topic_name_valid(t->p, t->len))
		return 0;
	if (!codec_utf8_valid(t->p, t->len)) /* [MQTT-1.5.4-1] */
		return -MQTT_RC_MALFORMED;
	return -MQTT_RC_TOPIC_NAME_INVALID; /* [MQTT-3.3.2-2] */
}

/* A property block whose length (d->v) has just been read, ending at p. */
static inline int body_props(struct dstate *d, const uint8_t *p, const uint8_t *pe,
			     unsigned slot, struct codec_props *props)
{
	int rc;

	if (d->v > (uint32_t)(pe - p - 1))
		return -MQTT_RC_MALFORMED;
	if ((rc = props_decode(p + 1, d->v, slot, props, false)) != 0)
		return rc;
	d->list = p + 1 + d->v;
	return 0;
}

static inline int body_filter(struct dstate *d, const uint8_t *p, const uint8_t *pe,
			      struct codec_buf *f)
{
	int rc;

	if ((rc = body_counted(d, p, pe, f)) != 0)
		return rc;
	if (codec_topic_filter_valid(f->p, f->len))
		return 0;
	if (!codec_utf8_valid(f->p, f->len)) /* [MQTT-1.5.4-1] */
		return -MQTT_RC_MALFORMED;
	return -MQTT_RC_TOPIC_FILTER_INVALID; /* [MQTT-4.7.1-1] [MQTT-4.7.3-1] */
}

/* An UNSUBSCRIBE filter: no options follow, so it counts at once. */
static inline int body_unsub_filter(struct dstate *d, const uint8_t *p, const uint8_t *pe)
{
	int rc;

	if ((rc = body_filter(d, p, pe, &d->filter)) != 0)
		return rc;
	d->count++;
	return 0;
}

/* Subscription options of 3.1 / 3.1.1: only the QoS bits, and not 3
 * [MQTT-3.8.3-4]. */
static inline int body_opts_v3(struct dstate *d, uint8_t o)
{
	if (o > 2)
		return -MQTT_RC_MALFORMED;
	d->count++;
	return 0;
}

/* MQTT 5 subscription options (3.8.3.1). */
static inline int body_opts_v5(struct dstate *d, uint8_t o, const struct codec_buf *filter)
{
	if (o & 0xC0) /* reserved bits [MQTT-3.8.3-5] */
		return -MQTT_RC_MALFORMED;
	if ((o & 0x03) == 3) /* "It is a Protocol Error if the Maximum QoS field has the value 3" */
		return -MQTT_RC_PROTOCOL_ERROR;
	if (((o >> 4) & 0x03) == 3) /* "It is a Protocol Error to send a Retain Handling value of 3" */
		return -MQTT_RC_PROTOCOL_ERROR;
	if ((o & 0x04) && filter->len >= 7 && memcmp(filter->p, "$share/", 7) == 0)
		return -MQTT_RC_PROTOCOL_ERROR; /* No Local on a shared subscription [MQTT-3.8.3-4] */
	d->count++;
	return 0;
}

/* Protocol name and level (3.1.2.1, 3.1.2.2): "MQIsdp" goes with 3, "MQTT"
 * with 4 and 5; anything else is answered 0x84 [MQTT-3.1.2-1]
 * [MQTT-3.1.2-2]. 0x83 and 0x84 are 3 and 4 with Mosquitto's bridge bit
 * (its try_private): c->bridge. */
static inline int body_level(struct dstate *d, uint8_t level)
{
	struct codec_connect *c = &d->out->u.connect;
	const struct codec_buf *n = &c->protocol_name;

	c->bridge = level == (0x80 | CODEC_V31) || level == (0x80 | CODEC_V311);
	if (c->bridge)
		level &= 0x7f;
	c->level = level;
	if (level == CODEC_V31 && n->len == 6 && memcmp(n->p, "MQIsdp", 6) == 0)
		d->out->version = level;
	else if ((level == CODEC_V311 || level == CODEC_V5) && n->len == 4 &&
		 memcmp(n->p, "MQTT", 4) == 0)
		d->out->version = level;
	else
		return -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
	d->version = level;
	return 0;
}

static inline void body_slot(struct dstate *d, struct codec_buf *b, uint8_t kind)
{
	d->slot[d->nslots] = b;
	d->kind[d->nslots++] = kind;
}

/* CONNECT flags (3.1.2.3 - 3.1.2.9). Also lays out the payload. */
static inline int body_connect_flags(struct dstate *d, uint8_t f)
{
	struct codec_connect *c = &d->out->u.connect;

	c->flags = f;
	if (f & 0x01) /* reserved [MQTT-3.1.2-3] */
		return -MQTT_RC_MALFORMED;
	c->clean_start = (f & 0x02) != 0;
	c->will = (f & 0x04) != 0;
	c->will_qos = (uint8_t)((f >> 3) & 0x03);
	c->will_retain = (f & 0x20) != 0;
	c->has_password = (f & 0x40) != 0;
	c->has_username = (f & 0x80) != 0;
	if (c->will_qos == 3) /* 3.1.2.6, [MQTT-3.1.2-14] in 3.1.1 */
		return -MQTT_RC_MALFORMED;
	if (!c->will && (c->will_qos || c->will_retain)) /* [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
		return -MQTT_RC_MALFORMED;
	/* 3.1 and 3.1.1: no password without a user name [MQTT-3.1.2-22]. */
	if (d->version < CODEC_V5 && c->has_password && !c->has_username)
		return -MQTT_RC_MALFORMED;

	body_slot(d, &c->client_id, SLOT_UTF8); /* [MQTT-3.1.3-4] */
	if (c->will) {
		body_slot(d, &c->will_topic, SLOT_TOPIC); /* [MQTT-3.1.3-10] */
		body_slot(d, &c->will_payload, SLOT_BINARY);
	}
	if (c->has_username)
		body_slot(d, &c->username, SLOT_UTF8); /* [MQTT-3.1.3-11] */
	if (c->has_password)
		body_slot(d, &c->password, SLOT_BINARY);
	return 0;
}

/* The next field of a CONNECT payload, its length ending at p. */
static inline int body_connect_field(struct dstate *d, const uint8_t *p, const uint8_t *pe)
{
	struct codec_buf *b;
	int rc;

	if (d->nslot == d->nslots) /* more fields than the flags announce */
		return -MQTT_RC_MALFORMED;
	b = d->slot[d->nslot];
	if ((rc = body_counted(d, p, pe, b)) != 0)
		return rc;
	switch (d->kind[d->nslot++]) {
	case SLOT_UTF8:
		if (!codec_utf8_valid(b->p, b->len))
			return -MQTT_RC_MALFORMED;
		break;
	case SLOT_TOPIC:
		if (!codec_utf8_valid(b->p, b->len))
			return -MQTT_RC_MALFORMED;
		if (!codec_topic_name_valid(b->p, b->len)) /* [MQTT-3.1.3-10] [MQTT-3.3.2-2] */
			return -MQTT_RC_TOPIC_NAME_INVALID;
		break;
	default:
		break;
	}
	return 0;
}

%%{
	machine body;
	alphtype unsigned char;

	action start_vbi { d->v = 0; d->shift = 0; }
	action add_vbi { vbi_add(&d->v, &d->shift, fc); }
	action read_pid { if ((d->err = body_pid(d, p)) != 0) fbreak; }
	action read_topic {
		if ((d->err = body_topic(d, p, pe)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action mark_payload { d->payload = p; fexec pe; }
	action read_props {
		if ((d->err = body_props(d, p, pe, d->out->type, d->props)) != 0) fbreak;
		fexec p + 1 + d->v;
	}
	action read_will_props {
		if ((d->err = body_props(d, p, pe, 0, &d->out->u.connect.will_props)) != 0) fbreak;
		fexec p + 1 + d->v;
	}
	action save_rc { d->rc = fc; }
	action mark_list { d->list = p + 1; }
	action read_protocol {
		if ((d->err = body_counted(d, p, pe, &d->out->u.connect.protocol_name)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action check_level { if ((d->err = body_level(d, fc)) != 0) fbreak; }
	action check_connect_flags {
		if ((d->err = body_connect_flags(d, fc)) != 0) fbreak;
		d->next = d->version != CODEC_V5 ? body_en_cpay_v3 :
			  d->out->u.connect.will ? body_en_cpay_v5_will : body_en_cpay_v5;
	}
	action read_keep_alive {
		d->out->u.connect.keep_alive = codec_get16(p - 1);
		fgoto *d->next;
	}
	action read_connect_field {
		if ((d->err = body_connect_field(d, p, pe)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action read_sub_filter {
		if ((d->err = body_filter(d, p, pe, &d->filter)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action check_sub_opts_v3 { if ((d->err = body_opts_v3(d, fc)) != 0) fbreak; }
	action check_sub_opts_v5 { if ((d->err = body_opts_v5(d, fc, &d->filter)) != 0) fbreak; }
	action read_unsub_filter {
		if ((d->err = body_unsub_filter(d, p, pe)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action save_session_present { d->out->u.connack.session_present = fc; }

	include mqtt_body "mqtt.rl";
	write data noerror nofinal;
}%%

static const int body_first_final_state = %%{ write first_final; }%%;

/* Picks the body machine for a packet, or -1 when the body must be empty
 * (PINGREQ, PINGRESP, DISCONNECT before MQTT 5). Sets d->props. */
static int body_entry(struct dstate *d, uint8_t type, uint8_t flags, bool v5)
{
	struct codec_packet *o = d->out;

	switch (type) {
	case CODEC_CONNECT:
		d->props = &o->u.connect.props;
		return body_en_connect;
	case CODEC_CONNACK:
		d->props = &o->u.connack.props;
		return v5 ? body_en_connack_v5 : body_en_connack_v3;
	case CODEC_PUBLISH:
		d->props = &o->u.publish.props;
		if (flags & 0x06)
			return v5 ? body_en_publish_v5_q : body_en_publish_v3_q;
		return v5 ? body_en_publish_v5_q0 : body_en_publish_v3_q0;
	case CODEC_PUBACK:
	case CODEC_PUBREC:
		d->props = &o->u.ack.props;
		return v5 ? body_en_puback_v5 : body_en_ack_v3;
	case CODEC_PUBREL:
	case CODEC_PUBCOMP:
		d->props = &o->u.ack.props;
		return v5 ? body_en_pubrel_v5 : body_en_ack_v3;
	case CODEC_SUBSCRIBE:
		d->props = &o->u.subscribe.props;
		return v5 ? body_en_subscribe_v5 : body_en_subscribe_v3;
	case CODEC_SUBACK:
		d->props = &o->u.suback.props;
		return v5 ? body_en_suback_v5 : body_en_suback_v3;
	case CODEC_UNSUBSCRIBE:
		d->props = &o->u.unsubscribe.props;
		return v5 ? body_en_unsubscribe_v5 : body_en_unsubscribe_v3;
	case CODEC_UNSUBACK:
		d->props = &o->u.suback.props;
		return v5 ? body_en_unsuback_v5 : body_en_ack_v3;
	case CODEC_DISCONNECT:
		d->props = &o->u.disconnect.props;
		return v5 ? body_en_disconnect_v5 : -1;
	case CODEC_AUTH:
		d->props = &o->u.disconnect.props;
		return body_en_auth_v5;
	default:
		return -1;
	}
}

/* Clears the union member the packet type uses, and nothing more: a
 * CONNECT's two property blocks are much larger than a PUBLISH. */
static void body_clear(struct codec_packet *o)
{
	switch (o->type) {
	case CODEC_CONNECT: memset(&o->u.connect, 0, sizeof(o->u.connect)); break;
	case CODEC_CONNACK: memset(&o->u.connack, 0, sizeof(o->u.connack)); break;
	case CODEC_PUBLISH: memset(&o->u.publish, 0, sizeof(o->u.publish)); break;
	case CODEC_SUBSCRIBE: memset(&o->u.subscribe, 0, sizeof(o->u.subscribe)); break;
	case CODEC_UNSUBSCRIBE: memset(&o->u.unsubscribe, 0, sizeof(o->u.unsubscribe)); break;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK: memset(&o->u.suback, 0, sizeof(o->u.suback)); break;
	case CODEC_DISCONNECT:
	case CODEC_AUTH: memset(&o->u.disconnect, 0, sizeof(o->u.disconnect)); break;
	default: memset(&o->u.ack, 0, sizeof(o->u.ack)); break;
	}
}

/* Moves what the machine collected into the union member. */
static int body_finish(struct dstate *d, const uint8_t *pe)
{
	struct codec_packet *o = d->out;
	struct codec_publish *pub;

	switch (o->type) {
	case CODEC_CONNECT:
		if (d->nslot != d->nslots) /* fewer fields than the flags announce */
			return -MQTT_RC_MALFORMED;
		break;
	case CODEC_CONNACK:
		o->u.connack.rc = d->rc;
		break;
	case CODEC_PUBLISH:
		pub = &o->u.publish;
		pub->qos = (uint8_t)((o->flags >> 1) & 0x03);
		pub->dup = (o->flags & 0x08) != 0;
		pub->retain = (o->flags & 0x01) != 0;
		pub->packet_id = d->pid;
		pub->payload.p = d->payload;
		pub->payload.len = (uint32_t)(pe - d->payload);
		/* An empty topic needs a Topic Alias (3.3.2.3.4); before MQTT 5
		 * topics are never empty [MQTT-4.7.3-1]. */
		if (pub->topic.len == 0 && !CODEC_HAS_PROP(&pub->props, CODEC_PROP_TOPIC_ALIAS))
			return -MQTT_RC_PROTOCOL_ERROR;
		break;
	case CODEC_SUBSCRIBE:
		o->u.subscribe.packet_id = d->pid;
		o->u.subscribe.list.p = d->list;
		o->u.subscribe.list.len = (uint32_t)(pe - d->list);
		o->u.subscribe.count = d->count;
		break;
	case CODEC_UNSUBSCRIBE:
		o->u.unsubscribe.packet_id = d->pid;
		o->u.unsubscribe.list.p = d->list;
		o->u.unsubscribe.list.len = (uint32_t)(pe - d->list);
		o->u.unsubscribe.count = d->count;
		break;
	case CODEC_SUBACK:
	case CODEC_UNSUBACK:
		o->u.suback.packet_id = d->pid;
		if (d->list) {
			o->u.suback.codes = d->list;
			o->u.suback.count = (uint32_t)(pe - d->list);
		}
		break;
	case CODEC_DISCONNECT:
	case CODEC_AUTH:
		o->u.disconnect.rc = d->rc;
		break;
	default:
		o->u.ack.packet_id = d->pid;
		o->u.ack.rc = d->rc;
		break;
	}
	return 0;
}

int codec_decode(uint8_t first, const uint8_t *body, uint32_t len, uint8_t version,
		 struct codec_packet *out)
{
	static const uint8_t empty[1];
	struct dstate state;
	struct dstate *d = &state;
	const uint8_t *p, *pe;
	uint8_t type = first >> 4;
	uint8_t flags = first & 0x0F;
	int cs, entry;

	if (!body) /* an empty body may come without a buffer */
		body = empty;
	p = body;
	pe = body + len;
	out->type = type;
	out->flags = flags;
	out->version = (version == CODEC_V31 || version == CODEC_V5) ? version : CODEC_V311;
	if (!first_byte_legal(first)) /* [MQTT-2.2.2-2] */
		return -MQTT_RC_MALFORMED;
	if (type == CODEC_AUTH && out->version != CODEC_V5) /* reserved before MQTT 5 */
		return -MQTT_RC_MALFORMED;
	body_clear(out);

	d->out = out;
	d->err = 0;
	d->version = out->version;
	d->rc = 0;
	d->pid = 0;
	d->count = 0;
	d->list = NULL;
	d->payload = pe;
	d->nslots = d->nslot = 0;
	d->props = NULL;
	d->next = 0;
	d->v = 0;
	d->shift = 0;
	d->filter.p = NULL;
	d->filter.len = 0;

	entry = body_entry(d, type, flags, out->version == CODEC_V5);
	if (entry < 0)
		return len == 0 ? 0 : -MQTT_RC_MALFORMED; /* 3.12, 3.13, 3.14 (3.1.1) */

	cs = entry;
	%% write exec;
	if (d->err)
		return d->err;
	if (cs < body_first_final_state) {
		/* "The payload MUST contain at least one Topic Filter" is a
		 * protocol error: [MQTT-3.8.3-2] (5), [MQTT-3.8.3-3] (3.1.1),
		 * [MQTT-3.10.3-2]. Any other early end is a malformed packet. */
		if ((type == CODEC_SUBSCRIBE || type == CODEC_UNSUBSCRIBE) && d->list == pe &&
		    d->count == 0)
			return -MQTT_RC_PROTOCOL_ERROR;
		return -MQTT_RC_MALFORMED;
	}
	return body_finish(d, pe);
}
