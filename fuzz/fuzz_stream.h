/*
 * fuzz_stream.h - the stream loop every codec harness shares: cut a byte
 * stream into packets with codec_frames(), the framing loop the broker and
 * the load generator use, and decode each with codec_decode(), following
 * the protocol level a decoded CONNECT sets. The harness supplies what to
 * check for each packet and where the loop stopped.
 */
#ifndef MIDGE_FUZZ_STREAM_H
#define MIDGE_FUZZ_STREAM_H

#include "fuzz/fuzz_common.h"

/* One packet codec_frames() handed out, and what decoding it gave. */
struct fuzz_packet {
	const uint8_t *at;             /* its first byte in the stream */
	size_t left;                   /* stream bytes from there to the end */
	const struct codec_frame *fr;  /* its fixed header */
	const struct codec_packet *pkt;
	const uint8_t *body;           /* a private copy of exactly its body */
	int rc;                        /* codec_decode()'s result */
};

/* Sees every packet, decoded or not. */
typedef void (*fuzz_packet_fn)(const struct fuzz_packet *fp);
/* Sees where the loop stopped: tail[0..n) is what codec_frames() did not
 * consume, rc and feed what it returned and reported. */
typedef void (*fuzz_end_fn)(const uint8_t *tail, size_t n, int rc, const struct codec_feed *feed);

struct fuzz_stream_run {
	const uint8_t *data;
	size_t size;
	uint8_t version;
	fuzz_packet_fn on_packet;
};

/* codec_frames()'s callback. The body is decoded from a heap copy of
 * exactly its length, so an over-read is caught by the sanitizers. A packet
 * that does not decode does not stop the loop: the next one is framed by
 * its length all the same. */
static inline int fuzz_stream_packet(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct fuzz_stream_run *run = ctx;
	struct codec_packet pkt;
	struct fuzz_packet fp;
	uint8_t *copy = fuzz_copy(body, fr->remaining);

	fp.at = body - fr->header_len;
	fp.left = run->size - (size_t)(fp.at - run->data);
	fp.fr = fr;
	fp.pkt = &pkt;
	fp.body = copy;
	fp.rc = codec_decode(fr->first, copy, fr->remaining, run->version, &pkt);
	run->on_packet(&fp);
	if (fp.rc == 0 && pkt.type == CODEC_CONNECT)
		run->version = pkt.version;
	free(copy);
	return 0;
}

/*
 * Frames data[0..size) at protocol level version until the bytes run out,
 * a fixed header fails or a packet is incomplete, with no size limit.
 * on_end may be NULL.
 */
static inline void fuzz_stream(const uint8_t *data, size_t size, uint8_t version,
			       fuzz_packet_fn on_packet, fuzz_end_fn on_end)
{
	struct fuzz_stream_run run = { data, size, version, on_packet };
	struct codec_feed feed;
	int rc = codec_frames(data, size, NULL, fuzz_stream_packet, &run, &feed);

	FUZZ_CHECK(feed.used <= size);
	if (on_end)
		on_end(data + feed.used, size - feed.used, rc, &feed);
}

#endif
