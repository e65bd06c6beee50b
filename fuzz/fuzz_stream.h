/*
 * fuzz_stream.h - the stream-splitting loop every codec harness shares:
 * cut a byte stream into packets with codec_frame_scan() and decode each
 * with codec_decode(), as the transport does, following the protocol level
 * a decoded CONNECT sets. The harness supplies what to check at each step.
 */
#ifndef MIDGE_FUZZ_STREAM_H
#define MIDGE_FUZZ_STREAM_H

#include "fuzz/fuzz_common.h"

/* Sees every scan result, including the last one that stops the loop. */
typedef void (*fuzz_scan_fn)(const uint8_t *data, size_t size, const struct codec_frame *fr, int rc);
/* Sees every decode attempt: rc, and pkt over a private copy of the body. */
typedef void (*fuzz_packet_fn)(const struct codec_frame *fr, const struct codec_packet *pkt,
			       const uint8_t *body, int rc);

/*
 * Splits data[0..size) into packets at protocol level version until the
 * bytes run out, a scan fails or a packet is incomplete. on_scan may be
 * NULL. Each body is decoded from a heap copy of exactly its length, so an
 * over-read is caught by the sanitizers.
 */
static inline void fuzz_stream(const uint8_t *data, size_t size, uint8_t version, fuzz_scan_fn on_scan,
			       fuzz_packet_fn on_packet)
{
	while (size > 0) {
		struct codec_frame fr;
		struct codec_packet pkt;
		uint8_t *body;
		int rc = codec_frame_scan(data, size, 0, &fr);

		if (on_scan)
			on_scan(data, size, &fr, rc);
		if (rc != 0 || fr.header_len + (size_t)fr.remaining > size)
			break;
		body = fuzz_copy(data + fr.header_len, fr.remaining);
		rc = codec_decode(fr.first, body, fr.remaining, version, &pkt);
		on_packet(&fr, &pkt, body, rc);
		if (rc == 0 && pkt.type == CODEC_CONNECT)
			version = pkt.version;
		free(body);
		data += fr.header_len + fr.remaining;
		size -= fr.header_len + fr.remaining;
	}
}

#endif
