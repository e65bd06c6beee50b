/*
 * fuzz_decode.c - the codec on arbitrary bytes. The first byte picks the
 * connection's protocol level (0, 3, 4, 5); the rest is a byte stream cut
 * into packets by codec_frame_scan() and decoded by codec_decode(), as the
 * transport does. Every result must be a known reason code, every view
 * must lie inside its body and every iterator must agree with the counts.
 * The scanner is also fed the stream one byte at a time and must agree
 * with the one-shot scan.
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

/* Every decode result is known; a decoded packet stays inside its body. */
static void fuzz_check_decoded(const struct codec_frame *fr, const struct codec_packet *pkt,
			       const uint8_t *body, int rc)
{
	FUZZ_CHECK(fuzz_rc_known(rc));
	FUZZ_CHECK(pkt->type == fr->type);
	if (rc == 0) {
		fuzz_check_packet(pkt, body, fr->remaining);
		FUZZ_CHECK(codec_encode_size(pkt) > 0);
	}
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

	fuzz_stream(data, size, version, fuzz_check_scan, fuzz_check_decoded);
	return 0;
}
