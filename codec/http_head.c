/*
 * http_head.c - what a WebSocket listener makes of a complete request head:
 * header lookups, the opening handshake's rules (RFC 6455 4.2.1 and
 * 4.2.2, MQTT 6.0) and the request path as a file name. The head itself
 * is parsed by the Ragel machine in http_parse.rl.
 */
#include "codec/http.h"

#include <string.h>

static int http_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Whether buf[s] equals text, compared without case. */
static bool http_span_is(const uint8_t *buf, struct http_span s, const char *text, bool nocase)
{
	size_t n = strlen(text);
	if (s.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int a = buf[s.off + i], b = (unsigned char)text[i];
		if (nocase ? http_lower(a) != http_lower(b) : a != b)
			return false;
	}
	return true;
}

const struct http_field *http_request_field(const struct http_request *r, const uint8_t *buf,
					    const char *name)
{
	for (uint32_t i = 0; i < r->n_fields; i++)
		if (http_span_is(buf, r->fields[i].name, name, true))
			return &r->fields[i];
	return NULL;
}

/* How many fields are named name. */
static int http_field_count(const struct http_request *r, const uint8_t *buf, const char *name)
{
	int n = 0;
	for (uint32_t i = 0; i < r->n_fields; i++)
		n += http_span_is(buf, r->fields[i].name, name, true);
	return n;
}

/* The next element of a comma-separated list in v[*pos..len), white space
 * trimmed (empty elements are skipped, RFC 7230 7). False at the end. */
static bool http_list_next(const uint8_t *v, size_t len, size_t *pos, struct http_span *out)
{
	while (*pos < len) {
		size_t start = *pos, end;
		while (*pos < len && v[*pos] != ',')
			(*pos)++;
		end = *pos;
		if (*pos < len)
			(*pos)++;
		while (start < end && (v[start] == ' ' || v[start] == '\t'))
			start++;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end > start) {
			out->off = (uint32_t)start;
			out->len = (uint32_t)(end - start);
			return true;
		}
	}
	return false;
}

bool http_list_has(const uint8_t *v, size_t len, const char *token)
{
	size_t pos = 0;
	struct http_span s;
	while (http_list_next(v, len, &pos, &s))
		if (http_span_is(v, s, token, true))
			return true;
	return false;
}

/* Whether field name is present and lists token. */
static bool http_field_lists(const struct http_request *r, const uint8_t *buf, const char *name,
			     const char *token)
{
	for (uint32_t i = 0; i < r->n_fields; i++) {
		const struct http_field *f = &r->fields[i];
		if (http_span_is(buf, f->name, name, true) &&
		    http_list_has(buf + f->value.off, f->value.len, token))
			return true;
	}
	return false;
}

static bool http_b64_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* A Sec-WebSocket-Key: base64 of 16 bytes, so 22 characters and "=="
 * (RFC 6455 4.2.1 item 5). */
static bool http_ws_key_valid(const uint8_t *k, size_t n)
{
	if (n != 24 || k[22] != '=' || k[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!http_b64_char(k[i]))
			return false;
	return true;
}

/* The first subprotocol the client offers that midge speaks, in the
 * client's order; *offered says whether it offered any. */
static const char *http_ws_subprotocol(const struct http_request *r, const uint8_t *buf,
				       bool *offered)
{
	static const char *const ours[] = {"mqtt", "mqttv3.1"};
	*offered = false;
	for (uint32_t i = 0; i < r->n_fields; i++) {
		const struct http_field *f = &r->fields[i];
		if (!http_span_is(buf, f->name, "Sec-WebSocket-Protocol", true))
			continue;
		const uint8_t *v = buf + f->value.off;
		size_t pos = 0;
		struct http_span s;
		while (http_list_next(v, f->value.len, &pos, &s)) {
			*offered = true;
			/* Subprotocol names are compared exactly (RFC 6455 4.1). */
			for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++)
				if (http_span_is(v, s, ours[k], false))
					return ours[k];
		}
	}
	return NULL;
}

static void http_answer(struct http_ws_answer *out, int status, const char *why)
{
	out->status = status;
	out->why = why;
}

void http_ws_decide(const struct http_request *r, const uint8_t *buf, const char *path,
		    bool files, struct http_ws_answer *out)
{
	memset(out, 0, sizeof(*out));
	bool get = http_span_is(buf, r->method, "GET", false);
	bool head = http_span_is(buf, r->method, "HEAD", false);
	if (!http_field_lists(r, buf, "Upgrade", "websocket")) {
		if (!files) {
			http_answer(out, HTTP_ANSWER_UPGRADE_REQUIRED,
				    "not a WebSocket upgrade (this listener serves MQTT over WebSocket)");
		} else if (!get && !head) {
			http_answer(out, HTTP_ANSWER_METHOD, "only GET and HEAD are served");
		} else {
			http_answer(out, HTTP_ANSWER_FILE, NULL);
			out->head = head;
		}
		return;
	}
	if (!get) {
		http_answer(out, HTTP_ANSWER_METHOD, "a WebSocket upgrade must be a GET");
		return;
	}
	if (r->major != 1 || r->minor < 1) {
		http_answer(out, HTTP_ANSWER_BAD_REQUEST, "a WebSocket upgrade needs HTTP/1.1");
		return;
	}
	if (http_field_count(r, buf, "Host") != 1) {
		/* RFC 7230 5.4: exactly one Host, or 400. */
		http_answer(out, HTTP_ANSWER_BAD_REQUEST, "no Host header, or more than one");
		return;
	}
	if (!http_field_lists(r, buf, "Connection", "upgrade")) {
		http_answer(out, HTTP_ANSWER_BAD_REQUEST, "Upgrade without Connection: Upgrade");
		return;
	}
	if (path && !http_span_is(buf, r->path, path, false)) {
		http_answer(out, HTTP_ANSWER_NOT_FOUND, "no WebSocket endpoint at this path");
		return;
	}
	const struct http_field *ver = http_request_field(r, buf, "Sec-WebSocket-Version");
	if (!ver || http_field_count(r, buf, "Sec-WebSocket-Version") != 1 ||
	    !http_span_is(buf, ver->value, "13", false)) {
		http_answer(out, HTTP_ANSWER_UPGRADE_REQUIRED, "WebSocket version is not 13");
		return;
	}
	const struct http_field *key = http_request_field(r, buf, "Sec-WebSocket-Key");
	if (!key || http_field_count(r, buf, "Sec-WebSocket-Key") != 1 ||
	    !http_ws_key_valid(buf + key->value.off, key->value.len)) {
		http_answer(out, HTTP_ANSWER_BAD_REQUEST,
			    "Sec-WebSocket-Key missing, repeated or not 16 bytes of base64");
		return;
	}
	bool offered;
	out->subprotocol = http_ws_subprotocol(r, buf, &offered);
	if (offered && !out->subprotocol) {
		/* [MQTT-6.0.0-3]: a client offers "mqtt"; we answer with it. */
		http_answer(out, HTTP_ANSWER_BAD_REQUEST,
			    "no MQTT subprotocol offered (mqtt or mqttv3.1) [MQTT-6.0.0-3]");
		return;
	}
	out->key = key->value;
	http_answer(out, HTTP_ANSWER_UPGRADE, NULL);
}

static int http_hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (uint8_t)http_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_path_file(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t o = 0, seg = 0; /* seg: where the current segment starts in out */
	bool dot_seg = false;
	if (outlen == 0)
		return -1;
	for (size_t i = 0; i <= len; i++) {
		int c = i < len ? p[i] : '/';
		if (c == '%') {
			int hi = i + 2 < len ? http_hex(p[i + 1]) : -1;
			int lo = i + 2 < len ? http_hex(p[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
			if (c == '/')
				return -1; /* an encoded separator is not one */
		} else if (c == '/') {
			/* A segment ends: empty ones collapse, hidden ones and
			 * "." / ".." never name a file. */
			if (dot_seg)
				return -1;
			if (o > seg && i < len) {
				if (o + 1 >= outlen)
					return -1;
				out[o++] = '/';
				seg = o;
			}
			continue;
		}
		if (c == 0 || c == '\\')
			return -1;
		if (o == seg)
			dot_seg = c == '.';
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}
