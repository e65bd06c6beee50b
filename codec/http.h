/*
 * http.h - the HTTP/1.1 request head (RFC 7230) as a WebSocket listener
 * reads it: a Ragel machine (grammar in codec/http.rl, host code in
 * codec/http_parse.rl) that resumes across reads, the rules of the
 * WebSocket opening handshake (RFC 6455 4.2.1, MQTT 6.0) and the request
 * path as a file name below http_dir.
 *
 * Zero copy: every result is a span (offset, length) into the caller's
 * buffer, which holds the head from its first byte and only grows while
 * it is parsed (Mongrel2's http11 parser keeps offsets for the same
 * reason). Bounded: the caller's buffer bounds the head's size, and at
 * most HTTP_MAX_FIELDS header fields are kept; more is an error. Nothing
 * here allocates.
 */
#ifndef MIDGE_CODEC_HTTP_H
#define MIDGE_CODEC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_FIELDS 48 /* header fields of one request head */

enum {
	HTTP_MORE = 0,          /* the head is not complete yet */
	HTTP_DONE = 1,          /* complete: head_len says where it ends */
	HTTP_ERR_SYNTAX = -1,   /* not an HTTP/1.x request head */
	HTTP_ERR_FIELDS = -2,   /* more than HTTP_MAX_FIELDS header fields */
};

/* buf[off..off + len) */
struct http_span {
	uint32_t off, len;
};

struct http_field {
	struct http_span name, value; /* value without surrounding white space */
};

struct http_request {
	/* the machine, between feeds */
	int cs;
	uint32_t nread; /* bytes of the buffer parsed */
	uint32_t mark;  /* where the element being read started */
	int err;
	/* results, valid once http_request_feed() returned HTTP_DONE */
	struct http_span method, target, path, query;
	uint8_t major, minor;
	uint32_t head_len; /* bytes of the head, its empty line included */
	uint32_t n_fields;
	struct http_field fields[HTTP_MAX_FIELDS];
};

void http_request_init(struct http_request *r);

/*
 * Parses buf[r->nread..len): buf is the request head from its first byte
 * and only grows between calls (what was parsed stays where it was).
 * Returns HTTP_DONE, HTTP_MORE or an HTTP_ERR_*; after HTTP_DONE the
 * bytes from r->head_len on are not the head's (a client may send its
 * first WebSocket frames right behind it).
 */
int http_request_feed(struct http_request *r, const uint8_t *buf, size_t len);

/* The first header field named name (case-insensitive), or NULL. */
const struct http_field *http_request_field(const struct http_request *r, const uint8_t *buf,
					    const char *name);

/* Whether a comma-separated list of tokens (a Connection or Upgrade
 * value) holds token, compared without case. */
bool http_list_has(const uint8_t *v, size_t len, const char *token);

/* What a WebSocket listener answers a request head with. */
enum http_answer {
	HTTP_ANSWER_UPGRADE = 101, /* switch to WebSocket */
	HTTP_ANSWER_FILE = 200,    /* a plain GET or HEAD: a file below http_dir */
	HTTP_ANSWER_BAD_REQUEST = 400,
	HTTP_ANSWER_NOT_FOUND = 404,
	HTTP_ANSWER_METHOD = 405,
	HTTP_ANSWER_UPGRADE_REQUIRED = 426,
	HTTP_ANSWER_TOO_LARGE = 431,
};

struct http_ws_answer {
	int status;              /* enum http_answer */
	const char *why;         /* what was wrong (static text), NULL for 101 and 200 */
	struct http_span key;    /* Sec-WebSocket-Key (101) */
	const char *subprotocol; /* "mqtt" or "mqttv3.1" (101), NULL when none was offered */
	bool head;               /* a HEAD request (200) */
};

/*
 * The opening handshake's rules (RFC 6455 4.2.1, 4.2.2) for the complete
 * head r in buf: a GET of HTTP/1.1 or later with Host, Upgrade: websocket,
 * Connection: Upgrade, a Sec-WebSocket-Key of 16 base64 bytes, version 13
 * (else 426 naming 13), and when it offers subprotocols, mqtt or mqttv3.1
 * among them (the first of those in the client's order is chosen)
 * [MQTT-6.0.0-3] [MQTT-6.0.0-4]. path: the only request path accepted
 * (NULL: any). files: http_dir is set, so a request that is not an
 * upgrade is a file request (GET or HEAD; else 405) rather than 426.
 */
void http_ws_decide(const struct http_request *r, const uint8_t *buf, const char *path,
		    bool files, struct http_ws_answer *out);

/*
 * The request path (percent-decoded, without query) as a relative file
 * name into out[0..outlen): "" for "/", which the caller maps to
 * index.html. Returns the length, or -1 when the path escapes its
 * directory or names something hidden ("..", ".", a segment starting
 * with '.'), holds NUL, a backslash or a bad escape, or does not fit.
 */
int http_path_file(const uint8_t *p, size_t len, char *out, size_t outlen);

#endif
