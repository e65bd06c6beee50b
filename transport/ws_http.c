/*
 * ws_http.c - the HTTP side of the WebSocket layer (RFC 6455 section 4):
 * the listener's settings (path, http_dir, the bound on a request head),
 * the opening handshake and the static files of http_dir.
 *
 * The request head is read into a buffer bounded by
 * websockets_headers_size and parsed by the Ragel machine of
 * codec/http_parse.rl as it arrives (codec/http_head.c decides what it
 * asks for); the answer is 101 (Sec-WebSocket-Accept is GnuTLS's SHA-1
 * and base64), a file, or an HTTP error followed by a close.
 */
#include "transport/ws_xport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define WS_FILE_CHUNK (16u * 1024u) /* a static file goes down this much at a time */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws_conf *ws_conf_new(const struct conf_listener *l, uint32_t headers_max, char *err,
			    size_t errlen)
{
	struct ws_conf *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->dir_fd = -1;
	c->headers_max = headers_max;
	if ((l->ws_path && !(c->path = strdup(l->ws_path))) ||
	    (l->http_dir && !(c->http_dir = strdup(l->http_dir)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (l->http_dir) {
		c->dir_fd = open(l->http_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->dir_fd < 0) {
			snprintf(err, errlen, "http_dir %s: %s", l->http_dir, strerror(errno));
			goto fail;
		}
	}
	return c;
fail:
	ws_conf_unref(c);
	return NULL;
}

struct ws_conf *ws_conf_ref(struct ws_conf *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void ws_conf_unref(struct ws_conf *c)
{
	if (!c || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
		return;
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	free(c->path);
	free(c->http_dir);
	free(c);
}

int ws_file_more(struct ws_xport *w)
{
	uint8_t chunk[WS_FILE_CHUNK];
	ssize_t n = read(w->file_fd, chunk, sizeof(chunk));
	if (n <= 0) {
		close(w->file_fd);
		w->file_fd = -1;
		return n < 0 ? -1 : 0;
	}
	return outq_copy(&w->out, chunk, (size_t)n);
}

/* ---- the handshake ------------------------------------------------------- */

static const char *ws_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	default: return "Error";
	}
}

/* Queues an HTTP error answer; the caller ends the connection. */
static int ws_answer_error(struct ws_xport *w, int status, const char *why)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n%s\r\n%s\n",
			 status, ws_reason(status), strlen(why) + 1,
			 status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "",
			 why);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	snprintf(w->why, sizeof(w->why), "HTTP %d: %s", status, why);
	return outq_copy(&w->out, (const uint8_t *)head, (size_t)n);
}

/* RFC 6455 4.2.2 item 5.4: base64(SHA-1(key + GUID)) into out[29]. */
static int ws_accept_key(const uint8_t *key, size_t len, char out[29])
{
	uint8_t in[24 + sizeof(WS_GUID) - 1], digest[20];
	gnutls_datum_t d = {digest, sizeof(digest)}, b64 = {NULL, 0};
	if (len != 24)
		return -1;
	memcpy(in, key, 24);
	memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, sizeof(in), digest) < 0 ||
	    gnutls_base64_encode2(&d, &b64) < 0)
		return -1;
	int rc = b64.size == 28 ? 0 : -1;
	if (rc == 0) {
		memcpy(out, b64.data, 28);
		out[28] = '\0';
	}
	gnutls_free(b64.data);
	return rc;
}

static const char *ws_content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"}, {".json", "application/json"},
		{".map", "application/json"}, {".txt", "text/plain; charset=utf-8"},
		{".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
		{".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".ico", "image/x-icon"},
		{".wasm", "application/wasm"},
	};
	size_t n = strlen(name);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t e = strlen(types[i].ext);
		if (n >= e && strcmp(name + n - e, types[i].ext) == 0)
			return types[i].type;
	}
	return "application/octet-stream";
}

/* A GET or HEAD of a file below http_dir: its header goes into out and
 * its content follows from ws_flush. Returns XPORT_CLOSE (answered; the
 * connection ends once it is sent) or XPORT_REFUSED (an error answer). */
static ssize_t ws_serve_file(struct ws_xport *w, const uint8_t *buf, bool head, const char **why)
{
	const struct http_request *r = &w->hs->req;
	char name[1024];
	int n = http_path_file(buf + r->path.off, r->path.len, name, sizeof(name) - 16);
	struct stat st;
	int fd = -1;
	if (n >= 0 && (n == 0 || name[n - 1] == '/'))
		strcpy(name + n, "index.html");
	if (n >= 0)
		fd = openat(w->conf->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		if (ws_answer_error(w, 404, "no such file") < 0)
			return XPORT_FAIL;
		*why = w->why;
		return XPORT_REFUSED;
	}
	char hdr[256];
	int hl = snprintf(hdr, sizeof(hdr),
			  "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
			  "Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
			  ws_content_type(name), (long long)st.st_size);
	if (outq_copy(&w->out, (const uint8_t *)hdr, (size_t)hl) < 0) {
		close(fd);
		return XPORT_FAIL;
	}
	if (head)
		close(fd);
	else
		w->file_fd = fd;
	snprintf(w->why, sizeof(w->why), "HTTP request for a file answered");
	*why = w->why;
	return XPORT_CLOSE;
}

/* Queues the 101 answer and starts the frames. Returns 0 or -1 (a key
 * of the wrong size, OOM). */
static int ws_start(struct ws_xport *w, const char *subprotocol, const uint8_t *key)
{
	char accept[29], head[256];
	if (ws_accept_key(key, 24, accept) < 0)
		return -1;
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
			 accept, subprotocol ? "Sec-WebSocket-Protocol: " : "",
			 subprotocol ? subprotocol : "", subprotocol ? "\r\n" : "");
	if (outq_copy(&w->out, (const uint8_t *)head, (size_t)n) < 0)
		return -1;
	return ws_wslay_start(w);
}

/* The complete head: upgrade, a file, or an error answer. Returns 1 once
 * upgraded, else what ws_read returns. */
static ssize_t ws_decide(struct ws_xport *w, const char **why)
{
	struct ws_handshake *hs = w->hs;
	const uint8_t *buf = hs->buf->data;
	struct http_ws_answer a;
	http_ws_decide(&hs->req, buf, w->conf->path, w->conf->dir_fd >= 0, &a);
	if (a.status == HTTP_ANSWER_FILE)
		return ws_serve_file(w, buf, a.head, why);
	if (a.status != HTTP_ANSWER_UPGRADE) {
		if (ws_answer_error(w, a.status, a.why) < 0)
			return XPORT_FAIL;
		*why = w->why;
		return XPORT_REFUSED;
	}
	if (ws_start(w, a.subprotocol, buf + a.key.off) < 0) {
		*why = "WebSocket: out of memory";
		return XPORT_FAIL;
	}
	/* What came behind the head is the first frames. */
	w->raw = hs->buf;
	w->raw_off = hs->req.head_len;
	free(hs);
	w->hs = NULL;
	return 1;
}

ssize_t ws_handshake_read(struct ws_xport *w, const char **why)
{
	struct ws_handshake *hs = w->hs;
	struct xport *below = w->base.below;
	uint32_t max = w->conf->headers_max;
	for (;;) {
		if (rbuf_reserve(w->pool, &hs->buf, max) < 0) {
			*why = "WebSocket: out of memory";
			return XPORT_FAIL;
		}
		struct rbuf *b = hs->buf;
		if (b->len >= max) {
			if (ws_answer_error(w, 431, "request head larger than websockets_headers_size") < 0)
				return XPORT_FAIL;
			*why = w->why;
			return XPORT_REFUSED;
		}
		ssize_t n = below->ops->read(below, w->fd, b->data + b->len, max - b->len, why);
		if (n <= 0)
			return n;
		b->len += (uint32_t)n;
		int rc = http_request_feed(&hs->req, b->data, b->len);
		if (rc == HTTP_DONE)
			return ws_decide(w, why);
		if (rc < 0) {
			int st = rc == HTTP_ERR_FIELDS ? 431 : 400;
			if (ws_answer_error(w, st, rc == HTTP_ERR_FIELDS ? "too many header fields"
								   : "malformed HTTP request head") < 0)
				return XPORT_FAIL;
			*why = w->why;
			return XPORT_REFUSED;
		}
	}
}
