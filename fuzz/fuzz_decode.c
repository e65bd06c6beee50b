/*
 * fuzz_decode.c - the codec on arbitrary bytes. The first byte picks the
 * connection's protocol level (0, 3, 4, 5); the rest is a byte stream cut
 * into packets by codec_frames() and decoded by codec_decode(), as the
 * transport does. Every result must be a known reason code, every view
 * must lie inside its body and every iterator must agree with the counts.
 * At each packet and where the loop stops, the scanner is also fed the
 * stream one byte at a time and must agree with the one-shot scan, and
 * codec_frames()'s final result must be what the scanner says of the
 * bytes it left.
 */
#include "fuzz/fuzz_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_scan_bytewise(const uint8_t *p, size_t n, const struct codec_frame *whole, int rc)
{
	struct codec_frame fr;
	size_t max = n < CODEC_MAX_FIXED_HEADER ? n : CODEC_MAX_FIXED_HEADER;

	for (size_t i = 0; i <= max; i++) {
		int r = codec_frame_scan(p, i, 0, &fr);
		if (r == CODEC_PARTIAL)
			continue;
		FUZZ_CHECK(r == rc);
		if (r == 0)
			FUZZ_CHECK(fr.header_len == whole->header_len && fr.remaining == whole->remaining &&
				   fr.first == whole->first);
		return;
	}
	FUZZ_CHECK(rc == CODEC_PARTIAL);
}

/* Every scan result is known, agrees with the bytewise scan and with a
 * size limit just at or just below the packet's size. */
static void fuzz_check_scan(const uint8_t *data, size_t size, const struct codec_frame *whole, int rc)
{
	struct codec_frame fr;

	fuzz_scan_bytewise(data, size, whole, rc);
	if (rc != 0) {
		FUZZ_CHECK(rc == CODEC_PARTIAL || rc == -MQTT_RC_MALFORMED);
		return;
	}
	FUZZ_CHECK(whole->header_len >= 2 && whole->header_len <= 5);
	FUZZ_CHECK(codec_frame_scan(data, size, whole->header_len + whole->remaining, &fr) == 0);
	if (whole->header_len + whole->remaining > 2)
		FUZZ_CHECK(codec_frame_scan(data, size, whole->header_len + whole->remaining - 1, &fr) ==
			   -MQTT_RC_PACKET_TOO_LARGE);
}

/* Every decode result is known; a decoded packet stays inside its body;
 * the packet's fixed header scans the same bytewise and under limits. */
static void fuzz_check_decoded(const struct fuzz_packet *fp)
{
	fuzz_check_scan(fp->at, fp->left, fp->fr, 0);
	FUZZ_CHECK(fuzz_rc_known(fp->rc));
	FUZZ_CHECK(fp->pkt->type == fp->fr->type);
	if (fp->rc == 0) {
		fuzz_check_packet(fp->pkt, fp->body, fp->fr->remaining);
		FUZZ_CHECK(codec_encode_size(fp->pkt) > 0);
	}
}

/* Where codec_frames() stopped agrees with a scan of what it left: a bad
 * fixed header is its error, an incomplete body is reported in need, and
 * otherwise the tail is empty or a fixed header still incomplete. */
static void fuzz_check_end(const uint8_t *tail, size_t n, int rc, const struct codec_feed *feed)
{
	struct codec_frame fr;
	int scan;

	FUZZ_CHECK(rc <= 0); /* the callback never stops the loop */
	if (n == 0) {
		FUZZ_CHECK(rc == 0 && feed->need == 0);
		return;
	}
	scan = codec_frame_scan(tail, n, 0, &fr);
	if (rc < 0)
		FUZZ_CHECK(scan == rc);
	else if (feed->need > 0)
		FUZZ_CHECK(scan == 0 && fr.header_len + (size_t)fr.remaining == feed->need &&
			   feed->need > n);
	else
		FUZZ_CHECK(scan == CODEC_PARTIAL);
	fuzz_check_scan(tail, n, &fr, scan);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t version;
	struct codec_props props;

	if (size < 1)
		return 0;
	version = fuzz_version(data[0]);
	data++;
	size--;

	/* The validators and the bare property decoder on the raw bytes. */
	codec_utf8_valid(data, size);
	if (codec_topic_name_valid(data, size))
		FUZZ_CHECK(codec_utf8_valid(data, size));
	if (codec_topic_filter_valid(data, size))
		FUZZ_CHECK(codec_utf8_valid(data, size));
	if (size <= 0xFFFFFFFFu) {
		uint8_t *copy = fuzz_copy(data, (uint32_t)size);
		int rc = codec_props_decode(copy, (uint32_t)size, (uint8_t)((size & 15) ? size & 15 : 1),
					    &props);
		FUZZ_CHECK(fuzz_rc_known(rc));
		if (rc == 0)
			fuzz_check_props(&props, copy, (uint32_t)size);
		rc = codec_props_decode_will(copy, (uint32_t)size, &props);
		FUZZ_CHECK(fuzz_rc_known(rc));
		free(copy);
	}

	fuzz_stream(data, size, version, fuzz_check_decoded, fuzz_check_end);
	return 0;
}
