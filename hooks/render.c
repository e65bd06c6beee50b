/*
 * render.c - events as JSON objects, the format docs/events.md specifies.
 *
 * Field order is fixed and every field listed for an event is always
 * present (null when it does not apply), so consumers may rely on keys.
 */
#include "hooks/render.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"

#define STR2(x) #x
#define STR(x) STR2(x)
#define MIDGE_SCHEMA_STR STR(MIDGE_EVENT_SCHEMA)

int hooks_buf_reserve(struct hooks_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

void hooks_buf_release(struct hooks_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int put(struct hooks_buf *b, const char *s, size_t n)
{
	if (hooks_buf_reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* Digits of v into the end of tmp[0..24); returns the first digit. */
static char *u64_digits(uint64_t v, char tmp[24])
{
	char *q = tmp + 24;
	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return q;
}

static int put_u64(struct hooks_buf *b, uint64_t v)
{
	char tmp[24];
	char *q = u64_digits(v, tmp);
	return put(b, q, (size_t)(tmp + 24 - q));
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 if the first
 * byte does not start one (overlongs, surrogates and code points above
 * U+10FFFF are not well-formed). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	/* RFC 3629 section 4, by first byte: the length and the range of the
	 * second byte (the rest are 0x80..0xBF). */
	static const struct {
		unsigned char first, last, len, lo, hi;
	} seq[] = {
		{0xC2, 0xDF, 2, 0x80, 0xBF},
		{0xE0, 0xE0, 3, 0xA0, 0xBF}, /* no overlongs */
		{0xE1, 0xEC, 3, 0x80, 0xBF},
		{0xED, 0xED, 3, 0x80, 0x9F}, /* no surrogates */
		{0xEE, 0xEF, 3, 0x80, 0xBF},
		{0xF0, 0xF0, 4, 0x90, 0xBF}, /* no overlongs */
		{0xF1, 0xF3, 4, 0x80, 0xBF},
		{0xF4, 0xF4, 4, 0x80, 0x8F}, /* nothing above U+10FFFF */
	};
	for (size_t k = 0; k < sizeof(seq) / sizeof(seq[0]); k++) {
		if (s[0] < seq[k].first || s[0] > seq[k].last)
			continue;
		size_t len = seq[k].len;
		if (n < len || s[1] < seq[k].lo || s[1] > seq[k].hi)
			return 0;
		for (size_t i = 2; i < len; i++)
			if (s[i] < 0x80 || s[i] > 0xBF)
				return 0;
		return len;
	}
	return 0;
}

/* 1 for the ASCII bytes a JSON string may hold as they are. */
static const uint8_t json_plain[128] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
	['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1,
	['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	[':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1, ['?'] = 1, ['@'] = 1, ['A'] = 1,
	['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
	['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
	['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
	['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1,
	['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
	['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
	['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1, [' '] = 1,
};

int hooks_json_string(struct hooks_buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	/* Worst case: every byte becomes \u00XX. */
	if (n > (SIZE_MAX - 2) / 6 || hooks_buf_reserve(b, n * 6 + 2) < 0)
		return -1;
	char *o = b->p + b->len;
	*o++ = '"';
	size_t i = 0;
	while (i < n) {
		/* Runs of plain ASCII (the usual case) are copied in one go. */
		size_t j = i;
		while (j < n && s[j] < 0x80 && json_plain[s[j]])
			j++;
		if (j > i) {
			memcpy(o, s + i, j - i);
			o += j - i;
			i = j;
			if (i == n)
				break;
		}
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t l = utf8_seq_len(s + i, n - i);
			if (l) {
				memcpy(o, s + i, l);
				o += l;
				i += l;
				continue;
			}
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		i++;
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
	return 0;
}

int hooks_base64(struct hooks_buf *b, const uint8_t *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (n > SIZE_MAX / 2 || hooks_buf_reserve(b, (n + 2) / 3 * 4) < 0)
		return -1;
	char *o = b->p + b->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = tab[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = tab[v >> 18];
		*o++ = tab[(v >> 12) & 63];
		*o++ = tab[(v >> 6) & 63];
		*o++ = '=';
	}
	b->len = (size_t)(o - b->p);
	return 0;
}

bool hooks_event_has_message(enum midge_event_type type)
{
	switch (type) {
	case MIDGE_EV_PUBLISH:
	case MIDGE_EV_DELIVER:
	case MIDGE_EV_ACKED:
	case MIDGE_EV_DROP:
	case MIDGE_EV_WILL:
	case MIDGE_EV_RETAIN_SET:
	case MIDGE_EV_RETAIN_CLEAR:
		return true;
	default:
		return false;
	}
}

const char *hooks_rc_name(enum midge_event_type type, uint8_t protocol, uint8_t rc)
{
	static const char *const connack_v3[] = {
		"accepted",
		"unacceptable protocol version",
		"identifier rejected",
		"server unavailable",
		"bad user name or password",
		"not authorized",
	};
	static const char *const granted[] = { "granted qos 0", "granted qos 1", "granted qos 2" };
	if ((type == MIDGE_EV_CONNECT || type == MIDGE_EV_CONNECT_REFUSED) &&
	    protocol != CODEC_V5 && rc <= MQTT_CONNACK_V3_NOT_AUTHORIZED)
		return connack_v3[rc];
	if (type == MIDGE_EV_SUBSCRIBE && rc <= MQTT_RC_GRANTED_QOS2)
		return granted[rc];
	return codec_rc_name(rc);
}

const char *hooks_drop_reason_name(enum midge_drop_reason r)
{
	switch (r) {
	case MIDGE_DROP_NO_SUBSCRIBERS: return "no_subscribers";
	case MIDGE_DROP_QUEUE_FULL: return "queue_full";
	case MIDGE_DROP_SLOW_CONSUMER: return "slow_consumer";
	case MIDGE_DROP_EXPIRED: return "expired";
	case MIDGE_DROP_TOO_LARGE: return "too_large";
	case MIDGE_DROP_NOT_AUTHORIZED: return "not_authorized";
	case MIDGE_DROP_HOOK_BACKLOG: return "hook_backlog";
	case MIDGE_DROP_PAYLOAD_FORMAT: return "payload_format_invalid";
	case MIDGE_DROP_RETAINED_FULL: return "retained_full";
	case MIDGE_DROP_MEMORY_LIMIT: return "memory_limit";
	case MIDGE_DROP_STORE_FAILING: return "store_failing";
	}
	return NULL;
}

/* Helpers that write `,"key":value`. Each returns 0, or nonzero when the
 * buffer cannot grow; callers chain them with || (which also fixes the
 * order of evaluation) and check once, which keeps the renderers
 * readable. */
static int f_key_n(struct hooks_buf *b, const char *key, size_t n)
{
	if (hooks_buf_reserve(b, n + 4) < 0)
		return -1;
	char *o = b->p + b->len;
	*o++ = ',';
	*o++ = '"';
	memcpy(o, key, n);
	o += n;
	*o++ = '"';
	*o++ = ':';
	b->len = (size_t)(o - b->p);
	return 0;
}

static int f_u64_n(struct hooks_buf *b, const char *key, size_t klen, uint64_t v)
{
	return f_key_n(b, key, klen) || put_u64(b, v);
}

static int f_bool_n(struct hooks_buf *b, const char *key, size_t klen, bool v)
{
	return f_key_n(b, key, klen) || (v ? PUT_LIT(b, "true") : PUT_LIT(b, "false"));
}

static int f_null_n(struct hooks_buf *b, const char *key, size_t klen)
{
	return f_key_n(b, key, klen) || PUT_LIT(b, "null");
}

static int f_cstr_n(struct hooks_buf *b, const char *key, size_t klen, const char *s)
{
	if (!s)
		return f_null_n(b, key, klen);
	return f_key_n(b, key, klen) || hooks_json_string(b, s, strlen(s));
}

/* A view; p == NULL means absent (null), an empty view is "". */
static int f_str_n(struct hooks_buf *b, const char *key, size_t klen, struct midge_str s)
{
	if (!s.p)
		return f_null_n(b, key, klen);
	return f_key_n(b, key, klen) || hooks_json_string(b, s.p, s.len);
}

/* A view where empty means "none" (null). */
static int f_str_or_null_n(struct hooks_buf *b, const char *key, size_t klen, struct midge_str s)
{
	if (!s.p || !s.len)
		return f_null_n(b, key, klen);
	return f_key_n(b, key, klen) || hooks_json_string(b, s.p, s.len);
}

/* Keys are string literals: their length is known at compile time. */
#define f_key(b, k) f_key_n((b), (k), sizeof(k) - 1)
#define f_u64(b, k, v) f_u64_n((b), (k), sizeof(k) - 1, (v))
#define f_bool(b, k, v) f_bool_n((b), (k), sizeof(k) - 1, (v))
#define f_null(b, k) f_null_n((b), (k), sizeof(k) - 1)
#define f_cstr(b, k, v) f_cstr_n((b), (k), sizeof(k) - 1, (v))
#define f_str(b, k, v) f_str_n((b), (k), sizeof(k) - 1, (v))
#define f_str_or_null(b, k, v) f_str_or_null_n((b), (k), sizeof(k) - 1, (v))

static int f_rc(struct hooks_buf *b, const struct midge_event *ev, uint8_t rc)
{
	uint8_t protocol = ev->client ? ev->client->protocol : 0;
	return f_u64(b, "rc", rc) || f_cstr(b, "rc_name", hooks_rc_name(ev->type, protocol, rc));
}

static int render_client(struct hooks_buf *b, const struct midge_client *c)
{
	if (!c)
		return f_null(b, "client_id") || f_null(b, "username") || f_null(b, "peer_addr") ||
		       f_null(b, "peer_port") || f_null(b, "protocol") || f_null(b, "tls");
	struct midge_str id = c->client_id;
	if (!id.p)
		id.p = "";
	int r = f_str(b, "client_id", id) || f_str(b, "username", c->username) ||
		f_cstr(b, "peer_addr", c->peer_addr);
	if (c->peer_addr)
		r |= f_u64(b, "peer_port", c->peer_port);
	else
		r |= f_null(b, "peer_port");
	if (c->protocol)
		r |= f_u64(b, "protocol", c->protocol);
	else
		r |= f_null(b, "protocol");
	return r || f_bool(b, "tls", c->tls);
}

static int render_connect(struct hooks_buf *b, const struct midge_event *ev)
{
	return f_bool(b, "clean_start", ev->u.connect.clean_start) ||
	       f_bool(b, "session_present", ev->u.connect.session_present) ||
	       f_u64(b, "keep_alive", ev->u.connect.keep_alive) ||
	       f_u64(b, "session_expiry", ev->u.connect.session_expiry) ||
	       f_bool(b, "will", ev->u.connect.has_will) || f_rc(b, ev, ev->u.connect.rc) ||
	       f_cstr(b, "why", ev->u.connect.why);
}

static int render_disconnect(struct hooks_buf *b, const struct midge_event *ev)
{
	return f_rc(b, ev, ev->u.disconnect.rc) ||
	       f_bool(b, "by_client", ev->u.disconnect.by_client) ||
	       f_bool(b, "will", ev->u.disconnect.will) || f_cstr(b, "why", ev->u.disconnect.why);
}

static int render_subscribe(struct hooks_buf *b, const struct midge_event *ev)
{
	int r = f_str(b, "filter", ev->u.subscribe.filter);
	if (ev->type == MIDGE_EV_SUBSCRIBE) {
		r |= f_u64(b, "qos", ev->u.subscribe.qos) ||
		     f_bool(b, "no_local", ev->u.subscribe.no_local) ||
		     f_bool(b, "retain_as_published", ev->u.subscribe.retain_as_published) ||
		     f_u64(b, "retain_handling", ev->u.subscribe.retain_handling);
		if (ev->u.subscribe.sub_id)
			r |= f_u64(b, "sub_id", ev->u.subscribe.sub_id);
		else
			r |= f_null(b, "sub_id");
	}
	return r || f_rc(b, ev, ev->u.subscribe.rc) ||
	       f_u64(b, "packet_id", ev->u.subscribe.packet_id);
}

/* The v5 properties of a message as JSON fields; a block that does not
 * decode renders as if it were empty (the codec accepted it on the way
 * in, so this is only defence). */
static int render_message_props(struct hooks_buf *b, const struct midge_message *m)
{
	struct codec_props pr;
	memset(&pr, 0, sizeof pr);
	bool ok = m->props && m->props_len &&
		  codec_props_decode(m->props, (uint32_t)m->props_len, CODEC_PUBLISH, &pr) == 0;
	int r = 0;
	if (ok && CODEC_HAS_PROP(&pr, CODEC_PROP_PAYLOAD_FORMAT))
		r |= f_u64(b, "payload_format", pr.payload_format);
	else
		r |= f_null(b, "payload_format");
	if (ok && CODEC_HAS_PROP(&pr, CODEC_PROP_MESSAGE_EXPIRY))
		r |= f_u64(b, "message_expiry", pr.message_expiry);
	else
		r |= f_null(b, "message_expiry");
	if (ok && CODEC_HAS_PROP(&pr, CODEC_PROP_CONTENT_TYPE))
		r |= f_key(b, "content_type") ||
		     hooks_json_string(b, (const char *)pr.content_type.p, pr.content_type.len);
	else
		r |= f_null(b, "content_type");
	if (ok && CODEC_HAS_PROP(&pr, CODEC_PROP_RESPONSE_TOPIC))
		r |= f_key(b, "response_topic") ||
		     hooks_json_string(b, (const char *)pr.response_topic.p, pr.response_topic.len);
	else
		r |= f_null(b, "response_topic");
	if (ok && CODEC_HAS_PROP(&pr, CODEC_PROP_CORRELATION_DATA))
		r |= f_key(b, "correlation_data") || PUT_LIT(b, "\"") ||
		     hooks_base64(b, pr.correlation_data.p, pr.correlation_data.len) ||
		     PUT_LIT(b, "\"");
	else
		r |= f_null(b, "correlation_data");
	r |= f_key(b, "user_properties") || PUT_LIT(b, "[");
	if (ok) {
		uint32_t pos = 0;
		struct codec_buf k, v;
		bool first = true;
		while (codec_props_next_user(&pr, &pos, &k, &v) == 1) {
			r |= (first ? PUT_LIT(b, "[") : PUT_LIT(b, ",[")) ||
			     hooks_json_string(b, (const char *)k.p, k.len) || PUT_LIT(b, ",") ||
			     hooks_json_string(b, (const char *)v.p, v.len) || PUT_LIT(b, "]");
			first = false;
		}
	}
	return r || PUT_LIT(b, "]");
}

static int render_message(struct hooks_buf *b, const struct midge_event *ev)
{
	const struct midge_message *m = ev->u.message.msg;
	int r = 0;
	if (m) {
		r |= f_str(b, "topic", m->topic) || f_u64(b, "qos", m->qos) ||
		     f_bool(b, "retain", m->retain) || f_bool(b, "dup", m->dup) ||
		     f_u64(b, "packet_id", m->packet_id) || f_str_or_null(b, "origin", m->origin) ||
		     f_u64(b, "payload_len", m->payload_len) || render_message_props(b, m);
	} else {
		static const char *const keys[] = {
		    "topic",          "qos",          "retain",         "dup",
		    "packet_id",      "origin",       "payload_len",    "payload_format",
		    "message_expiry", "content_type", "response_topic", "correlation_data"};
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			r |= f_null_n(b, keys[i], strlen(keys[i]));
		r |= f_key(b, "user_properties") || PUT_LIT(b, "[]");
	}
	if (ev->type == MIDGE_EV_DELIVER || ev->type == MIDGE_EV_ACKED || ev->type == MIDGE_EV_DROP)
		r |= f_str_or_null(b, "to", ev->u.message.to) ||
		     f_u64(b, "delivery_qos", ev->u.message.qos) ||
		     f_u64(b, "delivery_packet_id", ev->u.message.packet_id);
	if (ev->type == MIDGE_EV_DROP)
		r |= f_cstr(b, "drop_reason", hooks_drop_reason_name(ev->u.message.drop)) ||
		     f_u64(b, "drop_code", (uint64_t)ev->u.message.drop);
	return r || f_cstr(b, "why", ev->u.message.why);
}

static int render_acl(struct hooks_buf *b, const struct midge_event *ev)
{
	static const char *const access[] = {"?", "publish", "subscribe", "receive"};
	unsigned a = ev->u.acl.access;
	return f_str(b, "topic", ev->u.acl.topic) || f_cstr(b, "access", access[a < 4 ? a : 0]) ||
	       f_u64(b, "qos", ev->u.acl.qos) || f_bool(b, "retain", ev->u.acl.retain) ||
	       f_cstr(b, "why", ev->u.acl.why);
}

static int render_session(struct hooks_buf *b, const struct midge_event *ev)
{
	return f_u64(b, "expiry", ev->u.session.expiry) ||
	       f_u64(b, "queued", ev->u.session.queued) || f_cstr(b, "why", ev->u.session.why);
}

/* A number with a fraction, as JSON (3 decimals are plenty for ms). */
static int f_double(struct hooks_buf *b, const char *key, double v)
{
	char tmp[48];
	int n = snprintf(tmp, sizeof tmp, "%.3f", v > 0 && v < 1e15 ? v : 0.0);
	return f_key_n(b, key, strlen(key)) || put(b, tmp, (size_t)n);
}

static int render_store(struct hooks_buf *b, const struct midge_event *ev)
{
	return f_cstr(b, "state", ev->u.store.state) || f_cstr(b, "why", ev->u.store.why) ||
	       f_u64(b, "commits", ev->u.store.commits) ||
	       f_u64(b, "messages", ev->u.store.messages) || f_u64(b, "fsyncs", ev->u.store.fsyncs) ||
	       f_u64(b, "errors", ev->u.store.errors) || f_u64(b, "db_bytes", ev->u.store.db_bytes) ||
	       f_double(b, "commit_ms_avg", ev->u.store.commit_ms_avg) ||
	       f_double(b, "commit_ms_max", ev->u.store.commit_ms_max) ||
	       f_double(b, "messages_per_commit", ev->u.store.messages_per_commit) ||
	       f_double(b, "fsyncs_per_second", ev->u.store.fsyncs_per_second);
}

int hooks_render_body(struct hooks_buf *b, const struct midge_event *ev, const char *node)
{
	const char *name = midge_event_name(ev->type);
	if (!name)
		return -1;
	b->len = 0;
	if (hooks_buf_reserve(b, HOOKS_RENDER_HEADROOM) < 0)
		return -1;
	b->len = HOOKS_RENDER_HEADROOM;
	int r = f_cstr(b, "event", name) || f_u64(b, "ts", ev->time_ms) ||
		f_cstr(b, "node", node) || render_client(b, ev->client);
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
	case MIDGE_EV_CONNECT_REFUSED:
		r |= render_connect(b, ev);
		break;
	case MIDGE_EV_DISCONNECT:
	case MIDGE_EV_PROTOCOL_ERROR:
		r |= render_disconnect(b, ev);
		break;
	case MIDGE_EV_SUBSCRIBE:
	case MIDGE_EV_UNSUBSCRIBE:
		r |= render_subscribe(b, ev);
		break;
	case MIDGE_EV_SESSION_CREATED:
	case MIDGE_EV_SESSION_RESUMED:
	case MIDGE_EV_SESSION_TAKEOVER:
	case MIDGE_EV_SESSION_EXPIRED:
	case MIDGE_EV_SESSION_DISCARDED:
		r |= render_session(b, ev);
		break;
	case MIDGE_EV_PING:
		break;
	case MIDGE_EV_ACL_DENIED:
		r |= render_acl(b, ev);
		break;
	case MIDGE_EV_STORE:
		r |= render_store(b, ev);
		break;
	default:
		r |= render_message(b, ev);
		break;
	}
	r |= PUT_LIT(b, "}");
	return r ? -1 : 0;
}

size_t hooks_render_head(struct hooks_buf *b, uint64_t seq, uint64_t dropped)
{
	char tmp[24];
	char *end = b->p + HOOKS_RENDER_HEADROOM;
	char *o = end;
	/* Written backwards, from the body's first byte down. */
	char *q = u64_digits(dropped, tmp);
	size_t n = (size_t)(tmp + 24 - q);
	o -= n;
	memcpy(o, q, n);
	static const char k_dropped[] = ",\"dropped\":";
	o -= sizeof k_dropped - 1;
	memcpy(o, k_dropped, sizeof k_dropped - 1);
	q = u64_digits(seq, tmp);
	n = (size_t)(tmp + 24 - q);
	o -= n;
	memcpy(o, q, n);
	static const char k_start[] = "{\"schema\":" MIDGE_SCHEMA_STR ",\"seq\":";
	o -= sizeof k_start - 1;
	memcpy(o, k_start, sizeof k_start - 1);
	return (size_t)(o - b->p);
}

/* Little-endian stores: one move on little-endian hosts, which is every
 * host midge is built on in practice, byte by byte elsewhere. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LE_STORE(o, v) memcpy((o), &(v), sizeof(v))
#else
#define LE_STORE(o, v)                                              \
	do {                                                        \
		for (size_t i_ = 0; i_ < sizeof(v); i_++)           \
			(o)[i_] = (uint8_t)((uint64_t)(v) >> (8 * i_)); \
	} while (0)
#endif

static void le16(uint8_t *o, uint16_t v)
{
	LE_STORE(o, v);
}

static void le32(uint8_t *o, uint32_t v)
{
	LE_STORE(o, v);
}

static void le64(uint8_t *o, uint64_t v)
{
	LE_STORE(o, v);
}

/* A u32 length (0xFFFFFFFF: null) and the bytes; room is reserved. */
static uint8_t *compact_str(uint8_t *o, const void *p, size_t n)
{
	le32(o, p ? (uint32_t)n : UINT32_MAX);
	o += 4;
	if (p && n) {
		memcpy(o, p, n);
		o += n;
	}
	return o;
}

int hooks_compact_body(struct hooks_buf *b, const struct midge_event *ev, uint64_t seq,
		       uint64_t dropped)
{
	const struct midge_message *m = ev->u.message.msg;
	if (!hooks_event_has_message(ev->type) || !m)
		return -1;
	const struct midge_client *c = ev->client;
	struct midge_str none = {NULL, 0};
	struct midge_str cid = c ? c->client_id : none, user = c ? c->username : none;
	struct midge_str to = ev->u.message.to;
	const char *peer = c ? c->peer_addr : NULL;
	const char *why = ev->u.message.why;
	if (c && !cid.p)
		cid.p = "";
	if (!to.len)
		to.p = NULL; /* as in JSON: an empty receiver is null */
	size_t plen = peer ? strlen(peer) : 0, wlen = why ? strlen(why) : 0;
	if (m->payload_len > UINT32_MAX || m->props_len > UINT32_MAX)
		return -1;
	size_t strs = m->topic.len + cid.len + user.len + plen + m->origin.len + to.len + wlen +
		      m->props_len + m->payload_len;
	if (hooks_buf_reserve(b, HOOKS_COMPACT_HEAD + 9 * 4 + strs) < 0)
		return -1;
	uint8_t *o = (uint8_t *)b->p + b->len;
	memset(o, 0, HOOKS_COMPACT_HEAD);
	o[0] = HOOKS_COMPACT_VERSION;
	o[1] = (uint8_t)ev->type;
	o[2] = (uint8_t)((m->retain ? 1 : 0) | (m->dup ? 2 : 0) | (c ? 4 : 0) |
			 (c && c->tls ? 8 : 0));
	o[3] = m->qos;
	le64(o + 4, seq);
	le64(o + 12, dropped);
	le64(o + 20, ev->time_ms);
	le16(o + 28, m->packet_id);
	le16(o + 30, ev->u.message.packet_id);
	o[32] = ev->u.message.qos;
	o[33] = ev->type == MIDGE_EV_DROP ? (uint8_t)ev->u.message.drop : 0;
	o[34] = c ? c->protocol : 0;
	le16(o + 36, c && peer ? c->peer_port : 0);
	o += HOOKS_COMPACT_HEAD;
	o = compact_str(o, m->topic.p ? m->topic.p : "", m->topic.len);
	o = compact_str(o, cid.p, cid.len);
	o = compact_str(o, user.p, user.len);
	o = compact_str(o, peer, plen);
	o = compact_str(o, m->origin.len ? m->origin.p : NULL, m->origin.len);
	o = compact_str(o, to.p, to.len);
	o = compact_str(o, why, wlen);
	o = compact_str(o, m->props_len ? m->props : NULL, m->props_len);
	o = compact_str(o, m->payload_len ? m->payload : "", m->payload_len);
	b->len = (size_t)(o - (uint8_t *)b->p);
	return 0;
}

int hooks_compact_start(struct hooks_buf *b, const char *key, size_t klen, bool batch)
{
	b->len = 0;
	if (hooks_buf_reserve(b, klen + 1 + 4) < 0)
		return -1;
	memcpy(b->p, key, klen);
	b->p[klen] = '\0';
	b->len = klen + 1;
	if (batch) {
		memset(b->p + b->len, 0, 4); /* the count, hooks_compact_count() */
		b->len += 4;
	}
	return 0;
}

int hooks_compact_append(struct hooks_buf *b, const struct midge_event *ev, uint64_t seq,
			 uint64_t dropped)
{
	size_t at = b->len;
	if (hooks_buf_reserve(b, 4) < 0)
		return -1;
	b->len += 4;
	if (hooks_compact_body(b, ev, seq, dropped) < 0) {
		b->len = at;
		return -1;
	}
	le32((uint8_t *)b->p + at, (uint32_t)(b->len - at - 4));
	return 0;
}

void hooks_compact_count(struct hooks_buf *b, size_t klen, uint32_t count)
{
	le32((uint8_t *)b->p + klen + 1, count);
}
