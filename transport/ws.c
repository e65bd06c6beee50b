/*
 * ws.c - the WebSocket connection layer (RFC 6455; MQTT 6.0): its xport
 * operations. Until 101 reading is the handshake's (ws_http.c), which
 * may answer with an HTTP error or a file of http_dir instead; after it
 * the frames read from below are scanned by ws_frame.c into the plain
 * MQTT byte stream.
 *
 * Output: each writev becomes one binary frame whose header (2 to 10
 * bytes) is the only byte copied; the payload goes down as the caller's
 * iovecs. wslay's own send path copies every message into an allocation
 * of its own, so only control frames (PONG, Close) go through it, and
 * only between data frames.
 */
#include "transport/ws_xport.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- output --------------------------------------------------------------- */

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

/* Our bytes (answers, control frames, frame headers, a file of http_dir)
 * down, then below's own flush: 1 all gone, 0 below is full, or an
 * error. */
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

/* ---- input ---------------------------------------------------------------- */

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
