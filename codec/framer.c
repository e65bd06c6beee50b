/*
 * framer.c - the one framing loop: a byte stream in, complete packets out.
 *
 * Every reader of MQTT in the tree (the broker's connections, the load
 * generator's client side, the fuzzers, the unit tests) cuts its input
 * with codec_frames(), so the loop the fuzzers exercise is the loop that
 * serves clients. It owns nothing: packets are views into the caller's
 * buffer, and the caller keeps the unconsumed tail.
 */
#include "codec/codec.h"

int codec_frames(const uint8_t *p, size_t n, const uint32_t *max_packet, codec_packet_cb cb,
		 void *ctx, struct codec_feed *out)
{
	size_t off = 0;
	int rc = 0;

	out->need = 0;
	while (off < n) {
		struct codec_frame fr;
		int s = codec_frame_scan(p + off, n - off, max_packet ? *max_packet : 0, &fr);
		if (s == CODEC_PARTIAL)
			break;
		if (s < 0) {
			rc = s;
			break;
		}
		size_t whole = (size_t)fr.header_len + fr.remaining;
		if (n - off < whole) {
			out->need = whole;
			break;
		}
		/* Consumed before the callback runs: a callback that stops the
		 * loop has still handled its packet. */
		off += whole;
		rc = cb(ctx, &fr, p + off - fr.remaining);
		if (rc != 0)
			break;
	}
	out->used = off;
	return rc;
}
