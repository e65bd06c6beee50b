/*
 * ws.c - the WebSocket connection layer (RFC 6455; MQTT 6.0): the opening
 * handshake, static files from http_dir, then binary frames both ways.
 *
 * Input: the request head is read into a buffer bounded by
 * websockets_headers_size and parsed by the Ragel machine of
 * codec/http_parse.rl as it arrives; the answer is 101 (Sec-WebSocket-Accept
 * is GnuTLS's SHA-1 and base64), a file, or an HTTP error followed by a
 * close. After 101 the frames are scanned here (ws_scan): the payload of
 * binary frames is unmasked straight into the caller's buffer as a plain
 * byte stream, so an MQTT packet may span frames and a frame may hold
 * several [MQTT-6.0.0-2]; control frames and malformed ones go to wslay's
 * event API, which answers PING, runs the Close handshake and refuses
 * what breaks RFC 6455. Text frames are refused with Close 1003
 * [MQTT-6.0.0-1]; a frame or message above max_frame with Close 1009.
 *
 * Output: each writev becomes one binary frame whose header (2 to 10
 * bytes) is the only byte copied; the payload goes down as the caller's
 * iovecs. wslay's own send path copies every message into an allocation
 * of its own, so only control frames (PONG, Close) go through it, and
 * only between data frames.
 */
#include "transport/ws.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <wslay/wslay.h>

#include "codec/http.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/xport.h"

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

/* ---- the layer ----------------------------------------------------------- */

/* While the request head is read. */
struct ws_handshake {
	struct http_request req;
	struct rbuf *buf; /* the head from its first byte */
};

struct ws_xport {
	struct xport base; /* first: the layer is its xport */
	struct ws_conf *conf;
	struct rbuf_pool *pool;
	struct ws_handshake *hs;     /* NULL once answered */
	wslay_event_context_ptr ctx; /* NULL until the upgrade */
	struct outq out;             /* our bytes for below: answers, control frames, frame headers */
	struct outq_pos out_pos;
	int file_fd;                 /* a file being sent (-1: none) */
	uint64_t max_frame;
	uint64_t frame_left;         /* payload of the frame whose header is in out, still to go */
	uint64_t msg_len;            /* payload of the incoming message so far */
	/* the read in progress */
	int fd;
	uint8_t *rd;
	size_t rd_room, rd_got;
	const char *refused; /* we refused the peer: why */
	bool close_queued;
	bool ended;          /* reading has ended (a refusal or a Close) */
	bool more_below;     /* the last read of below filled what was asked: it may hold more */
	bool msg_open;       /* a fragmented binary message goes on */
	/* the frame being scanned (see ws_scan) */
	struct rbuf *raw;    /* frames read from below, from raw_off on not scanned */
	uint32_t raw_off;
	uint8_t in;          /* WS_IN_* */
	uint8_t hdr[14], hdr_len;
	uint8_t key[4];
	unsigned phase;      /* of the mask, at the next payload byte */
	uint64_t left;       /* payload bytes of the frame still to come */
	uint8_t wsl[14 + 125]; /* the frame handed to wslay */
	uint32_t wsl_len, wsl_off;
	char why[192];
};

/* ---- output: what the layer itself sends -------------------------------- */

/* wslay's output (control frames only): into out, never blocking. */
static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
			  void *user)
{
	struct ws_xport *w = user;
	(void)flags;
	if (outq_copy(&w->out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* Moves the control frames wslay queued into out; only between data
 * frames (a control frame inside one would corrupt it). */
static int ws_pull_control(struct ws_xport *w)
{
	if (!w->ctx || w->frame_left > 0)
		return 0;
	return wslay_event_send(w->ctx) == 0 ? 0 : -1;
}

/* Writes out down as far as below takes it: 1 all gone, 0 below is
 * full, or an error. */
static int ws_out_write(struct ws_xport *w, const char **why)
{
	struct xport *below = w->base.below;
	struct iovec iov[64];
	while (!outq_done(&w->out, w->out_pos)) {
		size_t total;
		int cnt = outq_iov(&w->out, w->out_pos, iov, 64, &total);
		ssize_t n = below->ops->writev(below, w->fd, iov, cnt, why);
		if (n == XPORT_AGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		outq_advance(&w->out, &w->out_pos, (size_t)n);
		if ((size_t)n < total)
			return 0;
	}
	outq_reset(&w->out, true);
	w->out_pos.seg = w->out_pos.off = 0;
	return 1;
}

/* The next piece of the file being sent into out; closes it at its end. */
static int ws_file_more(struct ws_xport *w)
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

static int ws_flush(struct xport *x, int fd, const char **why)
{
	struct ws_xport *w = (struct ws_xport *)x;
	w->fd = fd;
	if (ws_pull_control(w) < 0) {
		*why = "WebSocket: out of memory";
		return XPORT_FAIL;
	}
	for (;;) {
		int rc = ws_out_write(w, why);
		if (rc != 1)
			return rc;
		if (w->file_fd < 0)
			break;
		if (ws_file_more(w) < 0) {
			*why = "reading a file of http_dir failed";
			return XPORT_FAIL;
		}
	}
	return x->below->ops->flush(x->below, fd, why);
}

/* A data frame's header for a payload of len bytes. */
static size_t ws_frame_header(uint8_t h[10], uint64_t len)
{
	h[0] = 0x82; /* FIN, binary [MQTT-6.0.0-1] */
	if (len < 126) {
		h[1] = (uint8_t)len;
		return 2;
	}
	if (len < 65536) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		return 4;
	}
	h[1] = 127;
	for (int i = 0; i < 8; i++)
		h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

/*
 * The caller's bytes as binary frames: a frame holds all that is left of
 * iov when it starts; its header (and any control frame before it) goes
 * down in the same writev as the payload's iovecs. Returns payload bytes
 * taken (what below took of the header is not counted, and a frame
 * below did not finish continues on the next call), or an error.
 */
static ssize_t ws_writev(struct xport *x, int fd, const struct iovec *iov, int cnt,
			 const char **why)
{
	struct ws_xport *w = (struct ws_xport *)x;
	struct xport *below = x->below;
	struct iovec v[XPORT_IOV];
	size_t total = 0, taken = 0, off = 0;
	int idx = 0;
	ssize_t n = 0;
	if (!w->ctx) {
		*why = "output before the WebSocket handshake";
		return XPORT_FAIL;
	}
	w->fd = fd;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	while (taken < total || w->frame_left == 0) {
		if (w->frame_left == 0) {
			if (ws_pull_control(w) < 0) {
				*why = "WebSocket: out of memory";
				return XPORT_FAIL;
			}
			if (w->close_queued || wslay_event_get_close_sent(w->ctx))
				return (ssize_t)total; /* no data after a Close (RFC 6455 5.5.1) */
			if (taken == total)
				break;
			uint8_t h[10];
			size_t hl = ws_frame_header(h, total - taken);
			if (outq_copy(&w->out, h, hl) < 0) {
				*why = "WebSocket: out of memory";
				return XPORT_FAIL;
			}
			w->frame_left = total - taken;
		}
		/* Our bytes first; the payload joins them only when all of them
		 * are in this writev (else it would overtake the rest). */
		size_t pre;
		int m = outq_iov(&w->out, w->out_pos, v, 64, &pre);
		size_t want = pre, left = m < 64 ? w->frame_left : 0;
		for (int i = idx; i < cnt && left > 0 && m < XPORT_IOV; i++) {
			size_t o = i == idx ? off : 0;
			size_t l = iov[i].iov_len - o;
			if (l > left)
				l = left;
			v[m].iov_base = (uint8_t *)iov[i].iov_base + o;
			v[m++].iov_len = l;
			left -= l;
			want += l;
		}
		n = below->ops->writev(below, fd, v, m, why);
		if (n == XPORT_AGAIN)
			break;
		if (n < 0)
			return n;
		size_t h = (size_t)n < pre ? (size_t)n : pre;
		outq_advance(&w->out, &w->out_pos, h);
		if (outq_done(&w->out, w->out_pos)) {
			outq_reset(&w->out, true);
			w->out_pos.seg = w->out_pos.off = 0;
		}
		size_t p = (size_t)n - h;
		taken += p;
		w->frame_left -= p;
		while (p > 0) {
			size_t l = iov[idx].iov_len - off;
			if (p < l) {
				off += p;
				break;
			}
			p -= l;
			idx++;
			off = 0;
		}
		if ((size_t)n < want)
			break; /* below is full */
	}
	if (taken == 0 && n == XPORT_AGAIN)
		return XPORT_AGAIN;
	return (ssize_t)taken;
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

static int ws_start(struct ws_xport *w, const char *subprotocol, const uint8_t *key);

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

/* Reads the request head until it is complete, the peer pauses, or it
 * passes the bound (431). */
static ssize_t ws_handshake_read(struct ws_xport *w, const char **why)
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

/* ---- input: frames ------------------------------------------------------- */

/*
 * Frames are scanned here, header by header. Binary and continuation
 * frames (masked, no reserved bit, in a valid fragmentation sequence)
 * are unmasked eight bytes at a time straight into the caller's buffer:
 * wslay unmasks byte by byte, which measured as a fifth of the broker's
 * instructions per message. Every other frame (PING, PONG, Close, and
 * anything malformed) goes to wslay whole, which answers PING, runs the
 * Close handshake and refuses what breaks RFC 6455 with its close code;
 * text frames are refused here with 1003 [MQTT-6.0.0-1].
 */
enum { WS_IN_HEADER, WS_IN_DATA, WS_IN_WSLAY };

#define WS_CONTROL_MAX (14 + 125) /* a whole control frame, header included */

/* wslay asks for bytes: the frame being handed to it, then nothing. */
static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
			  void *user)
{
	struct ws_xport *w = user;
	size_t avail = w->wsl_len - w->wsl_off;
	(void)flags;
	if (avail == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(buf, w->wsl + w->wsl_off, len);
	w->wsl_off += (uint32_t)len;
	return (ssize_t)len;
}

/* We end the connection with a Close of this code. */
static void ws_refuse(struct ws_xport *w, uint16_t code, const char *why)
{
	if (w->refused)
		return;
	w->refused = why;
	size_t n = strlen(why) > 123 ? 123 : strlen(why);
	if (wslay_event_queue_close(w->ctx, code, (const uint8_t *)why, n) == 0)
		w->close_queued = true;
	wslay_event_shutdown_read(w->ctx);
}

static void ws_frame_start_cb(wslay_event_context_ptr ctx,
			      const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
	(void)ctx;
	(void)arg;
	(void)user; /* wslay only ever sees control and malformed frames */
}

/* dst[0..n) = src[0..n) XOR the mask, starting at byte `phase` of it. */
static void ws_unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4],
		      unsigned phase)
{
	uint8_t k[8];
	uint64_t k8, v;
	size_t i = 0;
	for (int j = 0; j < 8; j++)
		k[j] = key[(phase + (unsigned)j) & 3];
	memcpy(&k8, k, 8);
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, src + i, 8);
		v ^= k8;
		memcpy(dst + i, &v, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ k[i & 7];
}

/* A frame header at h[0..avail): its size once complete, else 0. Where
 * its frame goes is set: our data path, wslay, or a refusal. */
static size_t ws_header(struct ws_xport *w, const uint8_t *h, size_t avail)
{
	if (avail < 2)
		return 0;
	uint8_t code = h[1] & 0x7F;
	bool masked = h[1] & 0x80;
	size_t need = 2 + (code == 126 ? 2 : code == 127 ? 8 : 0) + (masked ? 4 : 0);
	if (avail < need)
		return 0;
	uint64_t len = code;
	if (code >= 126) {
		len = 0;
		for (size_t i = 2; i < (code == 126 ? 4u : 10u); i++)
			len = len << 8 | h[i];
	}
	uint8_t op = h[0] & 0x0F;
	bool fin = h[0] & 0x80, rsv = h[0] & 0x70;
	if (masked)
		memcpy(w->key, h + need - 4, 4);
	w->left = len;
	w->phase = 0;
	if (op == 0x1 && masked && !rsv) {
		ws_refuse(w, 1003, "text frame: MQTT travels in binary frames [MQTT-6.0.0-1]");
		return need;
	}
	if ((op == 0x0 || op == 0x2) && masked && !rsv) {
		if (op == 0x2 && w->msg_open) {
			ws_refuse(w, 1002, "binary frame inside a fragmented message");
			return need;
		}
		if (op == 0x0 && !w->msg_open) {
			ws_refuse(w, 1002, "continuation frame without a message");
			return need;
		}
		w->msg_len = op == 0x2 ? len : w->msg_len + len;
		if (len > w->max_frame || w->msg_len > w->max_frame) {
			ws_refuse(w, 1009, "frame or message larger than the maximum packet size");
			return need;
		}
		w->msg_open = !fin;
		w->in = WS_IN_DATA;
		return need;
	}
	/* A control frame, or one wslay will refuse: handed over whole (a
	 * control frame's payload is at most 125 bytes; of anything else the
	 * header and what fits is enough for wslay to refuse it). */
	memcpy(w->wsl, h, need);
	w->wsl_len = (uint32_t)need;
	w->wsl_off = 0;
	w->in = WS_IN_WSLAY;
	return need;
}

/* The frame in w->wsl goes to wslay. Returns whether reading goes on. */
static bool ws_to_wslay(struct ws_xport *w)
{
	wslay_event_set_error(w->ctx, 0);
	int rc = wslay_event_recv(w->ctx);
	bool control = (w->wsl[0] & 0x08) && (w->wsl[1] & 0x80) && !(w->wsl[0] & 0x70) &&
		       (w->wsl[0] & 0x0F) <= 0xA;
	w->wsl_len = w->wsl_off = 0;
	w->in = WS_IN_HEADER;
	if (!wslay_event_get_read_enabled(w->ctx))
		return false;
	if (rc != 0 || !control) {
		/* wslay took a frame it should have refused: refuse it here. */
		ws_refuse(w, 1002, "malformed frame");
		return false;
	}
	return true;
}

/*
 * Scans raw[*off..len): data payload unmasked into the caller's buffer
 * (as far as it has room), other frames to wslay. Returns false once
 * reading has ended (a refusal or a Close).
 */
static bool ws_scan(struct ws_xport *w, const uint8_t *raw, uint32_t len, uint32_t *off)
{
	while (*off < len) {
		if (w->in == WS_IN_HEADER) {
			/* Mostly the whole header is there: read in place. A
			 * header split across reads is gathered in hdr. */
			size_t hl = w->hdr_len ? 0 : ws_header(w, raw + *off, len - *off);
			if (hl) {
				*off += (uint32_t)hl;
			} else {
				w->hdr[w->hdr_len++] = raw[(*off)++];
				if (!ws_header(w, w->hdr, w->hdr_len))
					continue;
				w->hdr_len = 0;
			}
			if (w->refused)
				return false;
			if (w->in == WS_IN_WSLAY && w->left == 0 && !ws_to_wslay(w))
				return false;
			if (w->in == WS_IN_DATA && w->left == 0)
				w->in = WS_IN_HEADER;
			continue;
		}
		size_t n = len - *off;
		if (n > w->left)
			n = (size_t)w->left;
		if (w->in == WS_IN_DATA) {
			size_t room = w->rd_room - w->rd_got;
			if (n > room)
				n = room;
			if (n == 0)
				return true; /* the caller's buffer is full */
			ws_unmask(w->rd + w->rd_got, raw + *off, n, w->key, w->phase);
			w->rd_got += n;
		} else {
			size_t space = WS_CONTROL_MAX - w->wsl_len;
			memcpy(w->wsl + w->wsl_len, raw + *off, n < space ? n : space);
			w->wsl_len += (uint32_t)(n < space ? n : space);
		}
		*off += (uint32_t)n;
		w->left -= n;
		w->phase = (w->phase + (unsigned)n) & 3;
		if (w->in == WS_IN_WSLAY && (w->left == 0 || w->wsl_len == WS_CONTROL_MAX) &&
		    !ws_to_wslay(w))
			return false;
		if (w->left == 0)
			w->in = WS_IN_HEADER;
	}
	return true;
}

static int ws_start(struct ws_xport *w, const char *subprotocol, const uint8_t *key)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_frame_recv_start_callback = ws_frame_start_cb,
	};
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
	if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
		w->ctx = NULL;
		return -1;
	}
	/* Data frames never reach wslay: nothing of theirs is buffered. */
	wslay_event_config_set_no_buffering(w->ctx, 1);
	return 0;
}

/* Why wslay closed by itself, from the code it sent. */
static const char *ws_wslay_why(struct ws_xport *w)
{
	unsigned code = wslay_event_get_status_code_sent(w->ctx);
	snprintf(w->why, sizeof(w->why),
		 "WebSocket protocol error (an unmasked client frame, a bad opcode, reserved bits "
		 "or a bad control frame): Close %u",
		 code);
	return w->why;
}

/* Reading has ended: our refusal, the peer's Close, or wslay's refusal.
 * The Close answer goes out before our side shuts. */
static ssize_t ws_read_ended(struct ws_xport *w, const char **why)
{
	if (ws_pull_control(w) < 0) {
		*why = "WebSocket: out of memory";
		return XPORT_FAIL;
	}
	if (w->refused) {
		snprintf(w->why, sizeof(w->why), "WebSocket %s", w->refused);
		*why = w->why;
		return XPORT_REFUSED;
	}
	if (wslay_event_get_close_received(w->ctx)) {
		snprintf(w->why, sizeof(w->why), "WebSocket Close %u from the client",
			 wslay_event_get_status_code_received(w->ctx));
		*why = w->why;
		return XPORT_CLOSE;
	}
	*why = ws_wslay_why(w);
	return XPORT_REFUSED;
}

/*
 * The MQTT byte stream: what the frames read carry, into buf. Below is
 * read once per call (into a pooled buffer; what the caller has no room
 * for stays there and makes the layer pending); when that read came back
 * full, the layer is pending too, so the caller reads again at once.
 */
static ssize_t ws_read(struct xport *x, int fd, uint8_t *buf, size_t len, const char **why)
{
	struct ws_xport *w = (struct ws_xport *)x;
	struct xport *below = x->below;
	w->fd = fd;
	if (w->hs) {
		ssize_t r = ws_handshake_read(w, why);
		if (r != 1)
			return r;
	}
	if (!w->ctx)
		return XPORT_AGAIN; /* a file is being sent */
	if (w->ended)
		return ws_read_ended(w, why);
	w->rd = buf;
	w->rd_room = len;
	w->rd_got = 0;
	bool read_once = false;
	for (;;) {
		if (!w->raw || w->raw_off == w->raw->len) {
			if (read_once)
				break;
			if (w->raw)
				w->raw->len = w->raw_off = 0;
			if (rbuf_reserve(w->pool, &w->raw, 0) < 0) {
				*why = "WebSocket: out of memory";
				return XPORT_FAIL;
			}
			size_t want = w->raw->cap;
			ssize_t n = below->ops->read(below, fd, w->raw->data, want, why);
			read_once = true;
			if (n <= 0) {
				w->more_below = false;
				if (w->rd_got > 0 && n == XPORT_AGAIN)
					break;
				if (w->rd_got > 0)
					return (ssize_t)w->rd_got; /* the end shows on the next read */
				return n;
			}
			w->raw->len = (uint32_t)n;
			w->more_below = (size_t)n == want;
		}
		if (!ws_scan(w, w->raw->data, w->raw->len, &w->raw_off)) {
			w->ended = true;
			break;
		}
		if (w->rd_got == w->rd_room)
			break;
	}
	if (w->raw && w->raw_off == w->raw->len) {
		rbuf_put(w->pool, w->raw);
		w->raw = NULL;
		w->raw_off = 0;
	}
	if (w->rd_got > 0)
		return (ssize_t)w->rd_got; /* an end behind the data shows on the next read */
	if (w->ended)
		return ws_read_ended(w, why);
	return XPORT_AGAIN;
}

static bool ws_pending(const struct xport *x)
{
	const struct ws_xport *w = (const struct ws_xport *)x;
	return (w->raw && w->raw_off < w->raw->len && !w->ended) || w->more_below ||
	       x->below->ops->pending(x->below);
}

static size_t ws_queued(const struct xport *x)
{
	const struct ws_xport *w = (const struct ws_xport *)x;
	return (size_t)w->out.bytes + (w->file_fd >= 0 ? 1 : 0) + x->below->ops->queued(x->below);
}

/* Our Close (1000) where the handshake is done, after the last data
 * frame; then down. */
static int ws_shutdown(struct xport *x, int fd, const char **why)
{
	struct ws_xport *w = (struct ws_xport *)x;
	w->fd = fd;
	if (w->ctx && !w->close_queued && w->frame_left == 0 &&
	    wslay_event_queue_close(w->ctx, 1000, NULL, 0) == 0)
		w->close_queued = true;
	int rc = ws_flush(x, fd, why);
	if (rc != 1)
		return rc;
	return x->below->ops->shutdown(x->below, fd, why);
}

static void ws_free(struct xport *x)
{
	struct ws_xport *w = (struct ws_xport *)x;
	if (w->hs) {
		rbuf_put(w->pool, w->hs->buf);
		free(w->hs);
	}
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	rbuf_put(w->pool, w->raw);
	if (w->file_fd >= 0)
		close(w->file_fd);
	outq_free(&w->out);
	ws_conf_unref(w->conf);
	free(w);
}

static const struct xport_ops ws_ops = {
	.name = "websocket",
	.read = ws_read,
	.writev = ws_writev,
	.pending = ws_pending,
	.queued = ws_queued,
	.flush = ws_flush,
	.shutdown = ws_shutdown,
	.free = ws_free,
};

struct xport *ws_xport_new(struct ws_conf *conf, struct xport *below, struct rbuf_pool *pool,
			   uint64_t max_frame)
{
	struct ws_xport *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->hs = calloc(1, sizeof(*w->hs));
	if (!w->hs) {
		free(w);
		return NULL;
	}
	http_request_init(&w->hs->req);
	w->base.ops = &ws_ops;
	w->base.below = below;
	w->conf = ws_conf_ref(conf);
	w->pool = pool;
	w->file_fd = -1;
	w->max_frame = max_frame;
	return &w->base;
}
