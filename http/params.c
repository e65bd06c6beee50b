/*
 * params.c - the little the HTTP server parses itself (libmicrohttpd
 * parses requests, jansson parses JSON): numbers and booleans of query
 * arguments, paging cursors, and the body of POST /api/v1/publish, whose
 * v5 properties become the property block a client's PUBLISH would carry
 * (the engine then decodes and checks it as it checks a client's).
 * Everything is bounded by its input; fuzz/fuzz_http_params.c drives it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "http/internal.h"

int http_param_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	if (!s || !*s || strlen(s) > 10)
		return -1;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int http_param_bool(const char *s, bool *out)
{
	if (!s)
		return -1;
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

int http_cursor_decode(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 16)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

void http_cursor_encode(uint64_t v, char buf[17])
{
	snprintf(buf, 17, "%llx", (unsigned long long)v);
}

/* ---- the publish body ---- */

/* A growing property block. */
struct props_buf {
	uint8_t *p;
	size_t len, cap;
	bool failed;
};

static void pb_put(struct props_buf *b, const void *data, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void pb_byte(struct props_buf *b, uint8_t v)
{
	pb_put(b, &v, 1);
}

static void pb_u32(struct props_buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	pb_put(b, x, 4);
}

/* A two-byte length and the bytes (UTF-8 strings and binary data). */
static int pb_counted(struct props_buf *b, const void *p, size_t n)
{
	if (n > 65535)
		return -1;
	uint8_t x[2] = {(uint8_t)(n >> 8), (uint8_t)n};
	pb_put(b, x, 2);
	pb_put(b, p, n);
	return 0;
}

static int set_err(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -1;
}

/* Standard base64 (padded) to bytes, with GnuTLS's decoder. Returns a
 * malloc'd copy, *n its length, or NULL. */
static uint8_t *b64_decode(const char *s, size_t len, size_t *n)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)s, (unsigned)len}, out = {NULL, 0};
	if (len > 0xFFFFFFF0u)
		return NULL;
	if (len == 0) {
		*n = 0;
		return calloc(1, 1);
	}
	if (gnutls_base64_decode2(&in, &out) < 0)
		return NULL;
	uint8_t *copy = malloc(out.size ? out.size : 1);
	if (copy)
		memcpy(copy, out.data, out.size);
	*n = out.size;
	gnutls_free(out.data);
	return copy;
}

/* The "properties" object: the names the event JSON uses for them. */
static int publish_props(json_t *o, struct props_buf *b, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	if (!json_is_object(o))
		return set_err(err, errlen, "properties must be an object");
	json_object_foreach(o, key, v) {
		if (strcmp(key, "payload_format") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1)
				return set_err(err, errlen, "payload_format must be 0 or 1");
			pb_byte(b, 0x01);
			pb_byte(b, (uint8_t)json_integer_value(v));
		} else if (strcmp(key, "message_expiry") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > UINT32_MAX)
				return set_err(err, errlen, "message_expiry must be 0..4294967295 seconds");
			pb_byte(b, 0x02);
			pb_u32(b, (uint32_t)json_integer_value(v));
		} else if (strcmp(key, "content_type") == 0 || strcmp(key, "response_topic") == 0) {
			if (!json_is_string(v))
				return set_err(err, errlen, "content_type and response_topic are strings");
			pb_byte(b, key[0] == 'c' ? 0x03 : 0x08);
			if (pb_counted(b, json_string_value(v), json_string_length(v)) < 0)
				return set_err(err, errlen, "a property string is over 65535 bytes");
		} else if (strcmp(key, "correlation_data") == 0) {
			size_t n;
			uint8_t *data = json_is_string(v) ? b64_decode(json_string_value(v),
								       json_string_length(v), &n)
							  : NULL;
			if (!data)
				return set_err(err, errlen, "correlation_data must be base64");
			pb_byte(b, 0x09);
			int rc = pb_counted(b, data, n);
			free(data);
			if (rc < 0)
				return set_err(err, errlen, "correlation_data is over 65535 bytes");
		} else if (strcmp(key, "user_properties") == 0) {
			size_t i;
			json_t *pair;
			if (!json_is_array(v))
				return set_err(err, errlen,
					       "user_properties must be an array of [name, value]");
			json_array_foreach(v, i, pair) {
				json_t *k = json_array_get(pair, 0), *val = json_array_get(pair, 1);
				if (!json_is_array(pair) || json_array_size(pair) != 2 ||
				    !json_is_string(k) || !json_is_string(val))
					return set_err(err, errlen,
						       "user_properties must be an array of [name, value]");
				pb_byte(b, 0x26);
				if (pb_counted(b, json_string_value(k), json_string_length(k)) < 0 ||
				    pb_counted(b, json_string_value(val), json_string_length(val)) < 0)
					return set_err(err, errlen, "a user property is over 65535 bytes");
			}
		} else {
			snprintf(err, errlen,
				 "unknown property '%.64s' (payload_format, message_expiry, "
				 "content_type, response_topic, correlation_data, user_properties)",
				 key);
			return -1;
		}
	}
	return b->failed ? set_err(err, errlen, "out of memory") : 0;
}

int http_publish_parse(const char *body, size_t len, struct http_publish *out, char *err,
		       size_t errlen)
{
	json_error_t je;
	const char *key;
	json_t *v, *payload = NULL, *encoding = NULL, *props = NULL;
	memset(out, 0, sizeof *out);
	out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!out->root) {
		snprintf(err, errlen, "not JSON: %s (line %d, column %d)", je.text, je.line,
			 je.column);
		return -1;
	}
	if (!json_is_object(out->root))
		return set_err(err, errlen, "the body must be a JSON object");
	json_object_foreach(out->root, key, v) {
		if (strcmp(key, "topic") == 0) {
			if (!json_is_string(v))
				return set_err(err, errlen, "topic must be a string");
			out->topic = json_string_value(v);
			out->topic_len = json_string_length(v);
		} else if (strcmp(key, "payload") == 0) {
			payload = v;
		} else if (strcmp(key, "encoding") == 0) {
			encoding = v;
		} else if (strcmp(key, "qos") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2)
				return set_err(err, errlen, "qos must be 0, 1 or 2");
			out->qos = (uint8_t)json_integer_value(v);
		} else if (strcmp(key, "retain") == 0) {
			if (!json_is_boolean(v))
				return set_err(err, errlen, "retain must be true or false");
			out->retain = json_is_true(v);
		} else if (strcmp(key, "properties") == 0) {
			props = v;
		} else {
			snprintf(err, errlen,
				 "unknown field '%.64s' (topic, payload, encoding, qos, retain, "
				 "properties)",
				 key);
			return -1;
		}
	}
	if (!out->topic)
		return set_err(err, errlen, "topic is required");
	const char *enc = "utf8";
	if (encoding) {
		if (!json_is_string(encoding) || (strcmp(json_string_value(encoding), "utf8") != 0 &&
						  strcmp(json_string_value(encoding), "base64") != 0))
			return set_err(err, errlen, "encoding must be utf8 or base64");
		enc = json_string_value(encoding);
	}
	if (payload && !json_is_string(payload))
		return set_err(err, errlen, "payload must be a string");
	const char *ps = payload ? json_string_value(payload) : "";
	size_t plen = payload ? json_string_length(payload) : 0;
	if (strcmp(enc, "base64") == 0) {
		out->payload = b64_decode(ps, plen, &out->payload_len);
		if (!out->payload)
			return set_err(err, errlen, "payload is not base64");
	} else {
		out->payload = malloc(plen ? plen : 1);
		if (!out->payload)
			return set_err(err, errlen, "out of memory");
		memcpy(out->payload, ps, plen);
		out->payload_len = plen;
	}
	if (props) {
		struct props_buf b = {0};
		if (publish_props(props, &b, err, errlen) < 0) {
			free(b.p);
			return -1;
		}
		out->props = b.p;
		out->props_len = b.len;
	}
	return 0;
}

void http_publish_clear(struct http_publish *p)
{
	json_decref(p->root);
	free(p->payload);
	free(p->props);
	memset(p, 0, sizeof *p);
}
