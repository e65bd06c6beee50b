/*
 * decode.rl - the MQTT decoder: Ragel machines for the fixed header, the
 * body of every packet type, MQTT 5 property blocks, UTF-8 strings, topic
 * names and topic filters. Compile with `ragel -G2`.
 *
 * Counted fields (strings, binary data, property blocks, payloads) are
 * consumed by host code after a bounds check; the machine then jumps past
 * them with fexec. Everything decoded is a view into the caller's buffer.
 * Nothing here allocates.
 *
 * Actions are one to three lines calling the static inline helpers above
 * the machine that uses them; a helper returns 0 or a negated reason code,
 * which stops the machine (fbreak) and is what codec_decode() returns.
 */
#include "codec/codec.h"
#include "codec/internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* UTF-8, topic names, topic filters                                  */

%%{
	machine utf8_common;
	alphtype unsigned char;

	tail = 0x80..0xBF;
	# One code point: well-formed, no overlong form, no surrogate, not
	# U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2].
	u8char = 0x01..0x7F
		| 0xC2..0xDF tail
		| 0xE0 0xA0..0xBF tail
		| (0xE1..0xEC | 0xEE..0xEF) tail tail
		| 0xED 0x80..0x9F tail
		| 0xF0 0x90..0xBF tail tail
		| 0xF1..0xF3 tail tail tail
		| 0xF4 0x80..0x8F tail tail;

	# A character of a topic level: neither separator nor wildcard.
	lchar = u8char - ('+' | '#' | '/');
}%%

%%{
	machine utf8;
	include utf8_common;
	main := u8char*;
	write data noerror nofinal noentry;
}%%

%%{
	machine topic_name;
	include utf8_common;
	# No wildcard in a topic name [MQTT-3.3.2-2] [MQTT-4.7.1-1].
	main := (u8char - ('+' | '#'))*;
	write data noerror nofinal noentry;
}%%

%%{
	machine topic_filter;
	include utf8_common;
	# '#' fills a whole level and only the last one, '+' a whole level:
	# [MQTT-4.7.1-1] [MQTT-4.7.1-2] in 5.0, [MQTT-4.7.1-2] [MQTT-4.7.1-3]
	# in 3.1.1.
	level = lchar* | '+';
	filt = (level '/')* (level | '#');
	# $share/{ShareName}/{filter}: a share name of one or more characters
	# without wildcards or '/', and a non-empty filter [MQTT-4.8.2-1]
	# [MQTT-4.8.2-2].
	shared = '$share/' lchar+ '/' (filt - zlen);
	main := shared | (filt - ('$share/' any*));
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

%%{
	machine frame;
	alphtype unsigned char;

	action first { fr->first = fc; }
	action len_digit {
		len |= (uint32_t)(fc & 0x7F) << shift;
		shift += 7;
	}

	# The legal first bytes: packet type and the flags the specification
	# fixes for it [MQTT-2.1.3-1] (5), [MQTT-2.2.2-1] [MQTT-2.2.2-2] (3.1.1). PUBLISH may not carry
	# QoS 3 [MQTT-3.3.1-4] nor DUP with QoS 0 [MQTT-3.3.1-2]; PUBREL,
	# SUBSCRIBE and UNSUBSCRIBE carry 0b0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1]
	# [MQTT-3.10.1-1].
	first_byte = 0x10 | 0x20 | 0x30..0x35 | 0x3A..0x3D | 0x40 | 0x50 | 0x62 | 0x70
	      | 0x82 | 0x90 | 0xA2 | 0xB0 | 0xC0 | 0xD0 | 0xE0 | 0xF0;

	# Remaining length: at most four digits, minimally encoded
	# [MQTT-1.5.5-1] (a last digit of 0 after a continuation is a longer
	# form of a smaller number).
	remaining = ((0x80..0xFF $len_digit){0,3} 0x00..0x7F $len_digit)
	          - ((0x80..0xFF){1,3} 0x00);

	# The header ends at the last length digit: stop there, whatever
	# follows is the body.
	main := first_byte @first remaining @{ fbreak; };
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

const uint8_t codec_prop_kind[CODEC_PROP_ID_MAX + 1] = {
	[CODEC_PROP_PAYLOAD_FORMAT] = CODEC_KIND_BYTE,
	[CODEC_PROP_MESSAGE_EXPIRY] = CODEC_KIND_U32,
	[CODEC_PROP_CONTENT_TYPE] = CODEC_KIND_UTF8,
	[CODEC_PROP_RESPONSE_TOPIC] = CODEC_KIND_UTF8,
	[CODEC_PROP_CORRELATION_DATA] = CODEC_KIND_BINARY,
	[CODEC_PROP_SUBSCRIPTION_ID] = CODEC_KIND_VARINT,
	[CODEC_PROP_SESSION_EXPIRY] = CODEC_KIND_U32,
	[CODEC_PROP_ASSIGNED_CLIENT_ID] = CODEC_KIND_UTF8,
	[CODEC_PROP_SERVER_KEEP_ALIVE] = CODEC_KIND_U16,
	[CODEC_PROP_AUTH_METHOD] = CODEC_KIND_UTF8,
	[CODEC_PROP_AUTH_DATA] = CODEC_KIND_BINARY,
	[CODEC_PROP_REQUEST_PROBLEM_INFO] = CODEC_KIND_BYTE,
	[CODEC_PROP_WILL_DELAY] = CODEC_KIND_U32,
	[CODEC_PROP_REQUEST_RESPONSE_INFO] = CODEC_KIND_BYTE,
	[CODEC_PROP_RESPONSE_INFO] = CODEC_KIND_UTF8,
	[CODEC_PROP_SERVER_REFERENCE] = CODEC_KIND_UTF8,
	[CODEC_PROP_REASON_STRING] = CODEC_KIND_UTF8,
	[CODEC_PROP_RECEIVE_MAX] = CODEC_KIND_U16,
	[CODEC_PROP_TOPIC_ALIAS_MAX] = CODEC_KIND_U16,
	[CODEC_PROP_TOPIC_ALIAS] = CODEC_KIND_U16,
	[CODEC_PROP_MAX_QOS] = CODEC_KIND_BYTE,
	[CODEC_PROP_RETAIN_AVAILABLE] = CODEC_KIND_BYTE,
	[CODEC_PROP_USER_PROPERTY] = CODEC_KIND_PAIR,
	[CODEC_PROP_MAX_PACKET_SIZE] = CODEC_KIND_U32,
	[CODEC_PROP_WILDCARD_SUB_AVAILABLE] = CODEC_KIND_BYTE,
	[CODEC_PROP_SUB_ID_AVAILABLE] = CODEC_KIND_BYTE,
	[CODEC_PROP_SHARED_SUB_AVAILABLE] = CODEC_KIND_BYTE,
};

#define B(id) CODEC_PROP_BIT(CODEC_PROP_##id)
/* The property table of specification 2.2.2.2: which identifier may appear
 * in which packet. User properties may appear in every packet that has
 * properties. */
#define MSG_PROPS (B(PAYLOAD_FORMAT) | B(MESSAGE_EXPIRY) | B(CONTENT_TYPE) | B(RESPONSE_TOPIC) | \
		   B(CORRELATION_DATA) | B(USER_PROPERTY))
const uint64_t codec_prop_allowed[16] = {
	[0] = MSG_PROPS | B(WILL_DELAY),
	[CODEC_CONNECT] = B(SESSION_EXPIRY) | B(AUTH_METHOD) | B(AUTH_DATA) | B(REQUEST_PROBLEM_INFO) |
			  B(REQUEST_RESPONSE_INFO) | B(RECEIVE_MAX) | B(TOPIC_ALIAS_MAX) |
			  B(USER_PROPERTY) | B(MAX_PACKET_SIZE),
	[CODEC_CONNACK] = B(SESSION_EXPIRY) | B(ASSIGNED_CLIENT_ID) | B(SERVER_KEEP_ALIVE) |
			  B(AUTH_METHOD) | B(AUTH_DATA) | B(RESPONSE_INFO) | B(SERVER_REFERENCE) |
			  B(REASON_STRING) | B(RECEIVE_MAX) | B(TOPIC_ALIAS_MAX) | B(MAX_QOS) |
			  B(RETAIN_AVAILABLE) | B(USER_PROPERTY) | B(MAX_PACKET_SIZE) |
			  B(WILDCARD_SUB_AVAILABLE) | B(SUB_ID_AVAILABLE) | B(SHARED_SUB_AVAILABLE),
	[CODEC_PUBLISH] = MSG_PROPS | B(SUBSCRIPTION_ID) | B(TOPIC_ALIAS),
	[CODEC_PUBACK] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_PUBREC] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_PUBREL] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_PUBCOMP] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_SUBSCRIBE] = B(SUBSCRIPTION_ID) | B(USER_PROPERTY),
	[CODEC_SUBACK] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_UNSUBSCRIBE] = B(USER_PROPERTY),
	[CODEC_UNSUBACK] = B(REASON_STRING) | B(USER_PROPERTY),
	[CODEC_DISCONNECT] = B(SESSION_EXPIRY) | B(SERVER_REFERENCE) | B(REASON_STRING) |
			     B(USER_PROPERTY),
	[CODEC_AUTH] = B(AUTH_METHOD) | B(AUTH_DATA) | B(REASON_STRING) | B(USER_PROPERTY),
};

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

/* Byte properties: the specification allows only 0 and 1 for each of them
 * except Maximum QoS, whose values are 0 and 1 too (2 is expressed by its
 * absence); anything else is a protocol error (3.1.2.11.x, 3.2.2.3.x). */
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

	action id { if ((d->err = prop_begin(&d->ps, fc)) != 0) fbreak; }
	action byte { if ((d->err = prop_byte(&d->ps, fc)) != 0) fbreak; }
	action u16 { if ((d->err = prop_u16(&d->ps, codec_get16(p - 1))) != 0) fbreak; }
	action u32 { if ((d->err = prop_u32(&d->ps, codec_get32(p - 3))) != 0) fbreak; }
	action str {
		if ((d->err = prop_string(&d->ps, p, pe)) != 0) fbreak;
		fexec p + 1 + d->ps.flen;
	}
	action bin {
		if ((d->err = prop_binary(&d->ps, p, pe)) != 0) fbreak;
		fexec p + 1 + d->ps.flen;
	}
	action user { d->ps.out->user_count++; }
	action vb_start { d->ps.v = 0; d->ps.shift = 0; }
	action vb_digit { d->ps.v |= (uint32_t)(fc & 0x7F) << d->ps.shift; d->ps.shift += 7; }
	action sub_id { if ((d->err = prop_sub_id(&d->ps)) != 0) fbreak; }

	# A variable byte integer, minimally encoded [MQTT-1.5.5-1].
	vbi = ((0x80..0xFF){1,3} 0x01..0x7F | 0x00..0x7F) >vb_start $vb_digit;

	byte = any @byte;
	u16 = any any @u16;
	u32 = any any any any @u32;
	str = any any @str;
	bin = any any @bin;
	pair = str str @user;

	# One alternative per identifier, by its wire type (2.2.2.2).
	prop = (0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A) @id byte
	     | (0x13 | 0x21 | 0x22 | 0x23) @id u16
	     | (0x02 | 0x11 | 0x18 | 0x27) @id u32
	     | (0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F) @id str
	     | (0x09 | 0x16) @id bin
	     | 0x0B @id vbi @sub_id
	     | 0x26 @id pair;

	main := prop*;
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
 * [MQTT-3.1.2-2]. */
static inline int body_level(struct dstate *d, uint8_t level)
{
	struct codec_connect *c = &d->out->u.connect;
	const struct codec_buf *n = &c->protocol_name;

	c->level = level;
	if (level == CODEC_V31 && n->len == 6 && memcmp(n->p, "MQIsdp", 6) == 0)
		d->out->version = level;
	else if ((level == CODEC_V311 || level == CODEC_V5) && n->len == 4 &&
		 memcmp(n->p, "MQTT", 4) == 0)
		d->out->version = level;
	else
		return -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
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

	action vb_start { d->v = 0; d->shift = 0; }
	action vb_digit { d->v |= (uint32_t)(fc & 0x7F) << d->shift; d->shift += 7; }
	action pid { if ((d->err = body_pid(d, p)) != 0) fbreak; }
	action topic {
		if ((d->err = body_topic(d, p, pe)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action payload { d->payload = p; fexec pe; }
	action props {
		if ((d->err = body_props(d, p, pe, d->out->type, d->props)) != 0) fbreak;
		fexec p + 1 + d->v;
	}
	action will_props {
		if ((d->err = body_props(d, p, pe, 0, &d->out->u.connect.will_props)) != 0) fbreak;
		fexec p + 1 + d->v;
	}
	action rc { d->rc = fc; }
	action list { d->list = p + 1; }

	action proto {
		if ((d->err = body_counted(d, p, pe, &d->out->u.connect.protocol_name)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action level { if ((d->err = body_level(d, fc)) != 0) fbreak; d->version = fc; }
	action cflags {
		if ((d->err = body_connect_flags(d, fc)) != 0) fbreak;
		d->next = d->version != CODEC_V5 ? body_en_cpay_v3 :
			  d->out->u.connect.will ? body_en_cpay_v5_will : body_en_cpay_v5;
	}
	action keep_alive {
		d->out->u.connect.keep_alive = codec_get16(p - 1);
		fgoto *d->next;
	}
	action cfield {
		if ((d->err = body_connect_field(d, p, pe)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action sfilter {
		if ((d->err = body_filter(d, p, pe, &d->filter)) != 0) fbreak;
		fexec p + 1 + d->flen;
	}
	action sopts3 { if ((d->err = body_opts_v3(d, fc)) != 0) fbreak; }
	action sopts5 { if ((d->err = body_opts_v5(d, fc, &d->filter)) != 0) fbreak; }
	action ufilter {
		if ((d->err = body_filter(d, p, pe, &d->filter)) != 0) fbreak;
		d->count++;
		fexec p + 1 + d->flen;
	}
	action session_present { d->out->u.connack.session_present = fc; }

	vbi = ((0x80..0xFF){1,3} 0x01..0x7F | 0x00..0x7F) >vb_start $vb_digit;

	pid = any any @pid;
	props = vbi @props;
	topic = any any @topic;
	payload = (any >payload)?;

	# Reason codes each packet may carry (MQTT 5 2.4 and the packet
	# sections); anything else is malformed.
	rc_connack3 = 0x00..0x05;
	rc_connack5 = 0x00 | 0x80..0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..0x9D | 0x9F;
	rc_puback = 0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99;
	rc_pubrel = 0x00 | 0x92;
	rc_suback3 = 0x00..0x02 | 0x80; # [MQTT-3.9.3-2]
	rc_suback5 = 0x00..0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2;
	rc_unsuback5 = 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91;
	rc_disconnect = 0x00 | 0x04 | 0x80..0x83 | 0x87 | 0x89 | 0x8B | 0x8D..0x90 | 0x93..0xA2;
	rc_auth = 0x00 | 0x18 | 0x19;

	# CONNECT: the fixed part, then the payload machine the flags and the
	# level choose (cpay_*), each field a counted one.
	connect := any any @proto any @level any @cflags any any @keep_alive;
	cfield = any any @cfield;
	cpay_v3 := cfield+;
	cpay_v5 := props cfield+;
	cpay_v5_will := props cfield vbi @will_props cfield+;

	connack_v3 := (0x00 | 0x01) @session_present rc_connack3 @rc;
	connack_v5 := (0x00 | 0x01) @session_present rc_connack5 @rc props;

	publish_v3_q0 := topic payload;
	publish_v3_q := topic pid payload;
	publish_v5_q0 := topic props payload;
	publish_v5_q := topic pid props payload;

	# PUBACK..PUBCOMP: 3.1.1 has the packet id only; MQTT 5 may omit the
	# reason code (then 0) and the properties (3.4.2.1).
	ack_v3 := pid;
	puback_v5 := pid (rc_puback @rc props?)?;
	pubrel_v5 := pid (rc_pubrel @rc props?)?;

	subscribe_v3 := pid @list (any any @sfilter any @sopts3)+;
	subscribe_v5 := pid props (any any @sfilter any @sopts5)+;
	suback_v3 := pid @list rc_suback3+;
	suback_v5 := pid props rc_suback5+;
	unsubscribe_v3 := pid @list (any any @ufilter)+;
	unsubscribe_v5 := pid props (any any @ufilter)+;
	unsuback_v5 := pid props rc_unsuback5+;

	disconnect_v5 := (rc_disconnect @rc props?)?;
	auth_v5 := (rc_auth @rc props?)?;

	write data noerror nofinal;
}%%

static const int body_first_final_state = %%{ write first_final; }%%;

/* Bit n set: flags nibble n is legal for the packet type (2.2.2). */
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
	if (!(legal_flags[type] & (1u << flags))) /* [MQTT-2.2.2-2] */
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
