/*
 * ws_frame.c - the WebSocket layer's frames after 101 (RFC 6455 section
 * 5; MQTT 6.0): incoming frames scanned into the plain byte stream, so an
 * MQTT packet may span frames and a frame may hold several
 * [MQTT-6.0.0-2]; a frame or message above max_frame is refused with
 * Close 1009. wslay's event API takes the control frames, and its output
 * (PONG, Close) is queued here for ws.c to send between data frames.
 */
#include "transport/ws_xport.h"

#include <string.h>

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

int ws_pull_control(struct ws_xport *w)
{
	if (!w->ctx || w->frame_left > 0)
		return 0;
	return wslay_event_send(w->ctx) == 0 ? 0 : -1;
}

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

bool ws_scan(struct ws_xport *w, const uint8_t *raw, uint32_t len, uint32_t *off)
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

int ws_wslay_start(struct ws_xport *w)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_frame_recv_start_callback = ws_frame_start_cb,
	};
	if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0) {
		w->ctx = NULL;
		return -1;
	}
	/* Data frames never reach wslay: nothing of theirs is buffered. */
	wslay_event_config_set_no_buffering(w->ctx, 1);
	return 0;
}
