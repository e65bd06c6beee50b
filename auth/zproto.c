/*
 * zproto.c - the auth worker messages (zproto.h) with jansson: a
 * `connect` request out, a `ready` or an answer in.
 */
#include "auth/zproto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "auth/rules.h"

/* A string member: valid UTF-8 becomes a string, anything else null. */
static int zproto_set_str(json_t *o, const char *key, const void *p, size_t len)
{
	json_t *v = p ? json_stringn((const char *)p, len) : NULL;
	return json_object_set_new(o, key, v ? v : json_null());
}

static int zproto_set_b64(json_t *o, const char *key, const struct zproto_bytes *b)
{
	if (!b->p)
		return json_object_set_new(o, key, json_null());
	if (b->len == 0)
		return json_object_set_new(o, key, json_string(""));
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)b->p, (unsigned)b->len}, enc = {NULL, 0};
	if (gnutls_base64_encode2(&in, &enc) < 0)
		return -1;
	int rc = json_object_set_new(o, key, json_stringn((const char *)enc.data, enc.size));
	gnutls_memset(enc.data, 0, enc.size);
	gnutls_free(enc.data);
	return rc;
}

/* The members every request has: version, type, id, and what midge
 * knows of the client. Returns 0 or -1. */
static int zproto_set_client(json_t *o, const char *type, uint64_t id,
			     const struct zproto_connect *in)
{
	char ids[24];
	snprintf(ids, sizeof ids, "%" PRIu64, id);
	if (json_object_set_new(o, "version", json_integer(ZPROTO_VERSION)) < 0 ||
	    json_object_set_new(o, "type", json_string(type)) < 0 ||
	    json_object_set_new(o, "id", json_string(ids)) < 0 ||
	    zproto_set_str(o, "client_id", in->client_id.p ? in->client_id.p : "",
			   in->client_id.len) < 0 ||
	    zproto_set_str(o, "username", in->username.p, in->username.len) < 0 ||
	    zproto_set_str(o, "peer", in->peer, in->peer ? strlen(in->peer) : 0) < 0 ||
	    json_object_set_new(o, "peer_port", json_integer(in->peer_port)) < 0 ||
	    json_object_set_new(o, "listener", json_integer(in->listener)) < 0 ||
	    json_object_set_new(o, "protocol", json_integer(in->protocol)) < 0 ||
	    json_object_set_new(o, "tls", json_boolean(in->tls)) < 0 ||
	    zproto_set_str(o, "tls_subject", in->tls_subject,
			   in->tls_subject ? strlen(in->tls_subject) : 0) < 0 ||
	    zproto_set_str(o, "tls_fingerprint", in->tls_fingerprint,
			   in->tls_fingerprint ? strlen(in->tls_fingerprint) : 0) < 0)
		return -1;
	return 0;
}

/* *out: o's compact text, at most ZPROTO_MAX_MSG. Returns 0 or -1. */
static int zproto_dump(json_t *o, char **out, size_t *outlen)
{
	*out = json_dumps(o, JSON_COMPACT);
	if (!*out)
		return -1;
	*outlen = strlen(*out);
	if (*outlen > ZPROTO_MAX_MSG) {
		zproto_wipe(*out, *outlen);
		*out = NULL;
		return -1;
	}
	return 0;
}

int zproto_connect_request(const struct zproto_connect *in, uint64_t id, char **out,
			   size_t *outlen)
{
	int rc = -1;
	*out = NULL;
	json_t *o = json_object();
	if (!o)
		return -1;
	if (zproto_set_client(o, "connect", id, in) < 0 ||
	    zproto_set_b64(o, "password", &in->password) < 0 || zproto_dump(o, out, outlen) < 0)
		goto out;
	rc = 0;
out:
	/* the password's base64 is in the tree: jansson frees without wiping,
	 * so wipe the string value first */
	if (json_is_string(json_object_get(o, "password"))) {
		json_t *pw = json_object_get(o, "password");
		gnutls_memset((void *)(uintptr_t)json_string_value(pw), 0, json_string_length(pw));
	}
	json_decref(o);
	return rc;
}

int zproto_auth_request(const struct zproto_connect *in, const struct zproto_auth *a,
			uint64_t id, char **out, size_t *outlen)
{
	static const char *const steps[] = {"connect", "continue", "reauthenticate"};
	int rc = -1;
	*out = NULL;
	if (a->step < 0 || a->step > ZPROTO_STEP_REAUTH)
		return -1;
	json_t *o = json_object();
	if (!o)
		return -1;
	if (zproto_set_client(o, "auth", id, in) < 0 ||
	    json_object_set_new(o, "step", json_string(steps[a->step])) < 0 ||
	    zproto_set_str(o, "method", a->method.p, a->method.len) < 0 ||
	    zproto_set_b64(o, "data", &a->data) < 0 || zproto_dump(o, out, outlen) < 0)
		goto out;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int zproto_acl_request(const struct zproto_connect *in, enum zproto_action action,
		       const struct zproto_bytes *topic, uint8_t qos, bool retain, uint64_t id,
		       char **out, size_t *outlen)
{
	int rc = -1;
	*out = NULL;
	static const char *const names[] = {"publish", "subscribe", "receive"};
	if ((unsigned)action > ZPROTO_ACL_RECEIVE || qos > 2)
		return -1;
	json_t *o = json_object();
	if (!o)
		return -1;
	json_t *t = json_stringn(topic->p ? (const char *)topic->p : "", topic->len);
	if (!t) /* not UTF-8: the codec lets no such topic through */
		goto out;
	if (zproto_set_client(o, "acl", id, in) < 0 ||
	    json_object_set_new(o, "action", json_string(names[action])) < 0 ||
	    json_object_set_new(o, "topic", t) < 0 ||
	    json_object_set_new(o, "qos", json_integer(qos)) < 0 ||
	    json_object_set_new(o, "retain", json_boolean(retain)) < 0 ||
	    zproto_dump(o, out, outlen) < 0)
		goto out;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

void zproto_wipe(char *text, size_t len)
{
	if (!text)
		return;
	gnutls_memset(text, 0, len);
	free(text);
}

void zproto_answer_clear(struct zproto_answer *a)
{
	free(a->username);
	free(a->data);
	rules_unref(a->rules);
	memset(a, 0, sizeof *a);
}

/* The CONNACK codes a worker may refuse with ([MQTT-3.2.2-6]: a refusing
 * CONNACK carries a code of 0x80 or more); anything else is 0x87. */
static uint8_t zproto_refusal(json_int_t rc)
{
	static const uint8_t ok[] = {0x80, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x97, 0x9F};
	for (size_t i = 0; i < sizeof ok; i++)
		if (rc == ok[i])
			return ok[i];
	return 0x87;
}

static int zproto_fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -1;
}

/* "data" (enhanced authentication): base64 of at most ZPROTO_MAX_DATA
 * bytes, or absent / null. */
static int zproto_parse_data(json_t *o, struct zproto_answer *a, char *err, size_t errlen)
{
	json_t *d = json_object_get(o, "data");
	if (!d || json_is_null(d))
		return 0;
	size_t n = json_string_length(d);
	if (!json_is_string(d) || n > (ZPROTO_MAX_DATA + 2) / 3 * 4)
		return zproto_fail(err, errlen, "data: base64 of at most 65535 bytes");
	a->has_data = true;
	if (n == 0)
		return (a->data = malloc(1)) ? 0 : zproto_fail(err, errlen, "out of memory");
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)json_string_value(d), (unsigned)n};
	gnutls_datum_t dec = {NULL, 0};
	if (gnutls_base64_decode2(&in, &dec) < 0 || dec.size > ZPROTO_MAX_DATA) {
		gnutls_free(dec.data);
		return zproto_fail(err, errlen, "data: base64 of at most 65535 bytes");
	}
	a->data = malloc(dec.size ? dec.size : 1);
	if (a->data && dec.size)
		memcpy(a->data, dec.data, dec.size);
	a->data_len = dec.size;
	gnutls_free(dec.data);
	return a->data ? 0 : zproto_fail(err, errlen, "out of memory");
}

/* The answer's fields, after "id" and "result". */
static int zproto_parse_allow(json_t *o, struct zproto_answer *a, char *err, size_t errlen)
{
	json_t *u = json_object_get(o, "username");
	if (u && !json_is_null(u)) {
		size_t n = json_string_length(u);
		if (!json_is_string(u) || n == 0 || n > ZPROTO_MAX_USERNAME ||
		    memchr(json_string_value(u), '\0', n))
			return zproto_fail(err, errlen, "username: a non-empty string without NUL");
		if (!(a->username = malloc(n + 1)))
			return zproto_fail(err, errlen, "out of memory");
		memcpy(a->username, json_string_value(u), n + 1);
		a->username_len = n;
	}
	json_t *x = json_object_get(o, "session_expiry_max");
	if (x && !json_is_null(x)) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 ||
		    json_integer_value(x) > UINT32_MAX)
			return zproto_fail(err, errlen, "session_expiry_max: 0..4294967295 seconds");
		a->has_expiry_max = true;
		a->expiry_max = (uint32_t)json_integer_value(x);
	}
	json_t *acl = json_object_get(o, "acl");
	if (json_is_string(acl)) {
		/* the worker decides this client's messages one by one */
		if (strcmp(json_string_value(acl), "ask") != 0)
			return zproto_fail(err, errlen, "acl: a list of rules, or \"ask\"");
		a->acl_ask = true;
	} else if (acl && !json_is_null(acl)) {
		/* a worker's list: %c/%u at each check (a cached answer serves
		 * other clients too), keys it does not know ignored */
		const struct rules_opts ro = {.max = RULES_MAX_WORKER};
		char e[160];
		if (!(a->rules = rules_from_json(acl, &ro, e, sizeof e))) {
			snprintf(err, errlen, "acl: %s", e);
			return -1;
		}
	}
	/* deliveries asked too, or decided by the SUBSCRIBE's answer */
	json_t *rcv = json_object_get(o, "receive");
	const char *rv = json_string_value(rcv);
	if (rcv && !json_is_null(rcv) &&
	    (!rv || (strcmp(rv, "ask") != 0 && strcmp(rv, "subscribe") != 0)))
		return zproto_fail(err, errlen, "receive: \"ask\" or \"subscribe\"");
	a->receive_ask = rv && strcmp(rv, "ask") == 0;
	if (a->receive_ask && !a->acl_ask)
		return zproto_fail(err, errlen, "receive: \"ask\" needs \"acl\": \"ask\"");
	return 0;
}

int zproto_parse(const void *buf, size_t len, struct zproto_answer *out, char *err, size_t errlen)
{
	json_error_t je;
	int rc = -1;
	memset(out, 0, sizeof *out);
	if (len > ZPROTO_MAX_MSG)
		return zproto_fail(err, errlen, "message over 1 MiB");
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		snprintf(err, errlen, "not JSON: %s (column %d)", je.text, je.column);
		return -1;
	}
	json_t *v = json_object_get(o, "version");
	if (!json_is_object(o) || !json_is_integer(v) || json_integer_value(v) != ZPROTO_VERSION) {
		zproto_fail(err, errlen, "not an object with \"version\": 1");
		goto out;
	}
	const char *type = json_string_value(json_object_get(o, "type"));
	if (type && strcmp(type, "ready") == 0) {
		rc = ZPROTO_READY;
		goto out;
	}
	const char *id = json_string_value(json_object_get(o, "id"));
	char *end = NULL;
	if (!id || !*id || strlen(id) > 20 || (out->id = strtoull(id, &end, 10), *end) ||
	    id[0] == '-' || id[0] == '+' || id[0] == ' ') {
		zproto_fail(err, errlen, "id: the request's id, a decimal string");
		goto out;
	}
	const char *result = json_string_value(json_object_get(o, "result"));
	json_t *c = json_object_get(o, "cache");
	if (c && !json_is_boolean(c)) {
		zproto_fail(err, errlen, "cache: true or false");
		goto out;
	}
	out->no_cache = c && json_is_false(c);
	json_t *any = json_object_get(o, "any_qos_retain");
	if (any && !json_is_boolean(any)) {
		zproto_fail(err, errlen, "any_qos_retain: true or false");
		goto out;
	}
	out->any_qos_retain = any && json_is_true(any);
	if (zproto_parse_data(o, out, err, errlen) < 0)
		goto out;
	if (result && strcmp(result, "allow") == 0) {
		out->allow = true;
		if (zproto_parse_allow(o, out, err, errlen) < 0)
			goto out;
	} else if (result && strcmp(result, "continue") == 0) {
		out->cont = true;
	} else if (result && strcmp(result, "defer") == 0) {
		out->defer = true; /* nothing else of it is read */
	} else if (result && strcmp(result, "deny") == 0) {
		json_t *r = json_object_get(o, "reason_code");
		if (r && !json_is_integer(r)) {
			zproto_fail(err, errlen, "reason_code: an integer");
			goto out;
		}
		out->reason_code = r ? zproto_refusal(json_integer_value(r)) : 0x87;
	} else {
		zproto_fail(err, errlen, "result: allow, deny, defer or continue");
		goto out;
	}
	rc = ZPROTO_ANSWER;
out:
	if (rc < 0)
		zproto_answer_clear(out);
	json_decref(o);
	return rc;
}
