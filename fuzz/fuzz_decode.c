/*
 * fuzz_decode.c - the codec on arbitrary bytes. The first byte picks the
 * connection's protocol level (0, 3, 4, 5); the rest is a byte stream cut
 * into packets by codec_frame_scan() and decoded by codec_decode(), as the
 * transport does. Every result must be a known reason code, every view
 * must lie inside its body and every iterator must agree with the counts.
 * The scanner is also fed the stream one byte at a time and must agree
 * with the one-shot scan.
 */
#include "fuzz/fuzz_common.h"

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

	while (size > 0) {
		struct codec_frame fr;
		struct codec_packet pkt;
		uint8_t *body;
		int rc = codec_frame_scan(data, size, 0, &fr);

		fuzz_scan_bytewise(data, size, &fr, rc);
		if (rc != 0) {
			FUZZ_CHECK(rc == CODEC_PARTIAL || rc == -MQTT_RC_MALFORMED);
			break;
		}
		FUZZ_CHECK(fr.header_len >= 2 && fr.header_len <= 5);
		FUZZ_CHECK(codec_frame_scan(data, size, fr.header_len + fr.remaining, &fr) == 0);
		if (fr.header_len + fr.remaining > 2)
			FUZZ_CHECK(codec_frame_scan(data, size, fr.header_len + fr.remaining - 1, &fr) ==
				   -MQTT_RC_PACKET_TOO_LARGE);
		if (fr.header_len + (size_t)fr.remaining > size)
			break;
		body = fuzz_copy(data + fr.header_len, fr.remaining);
		rc = codec_decode(fr.first, body, fr.remaining, version, &pkt);
		FUZZ_CHECK(fuzz_rc_known(rc));
		FUZZ_CHECK(pkt.type == fr.type);
		if (rc == 0) {
			fuzz_check_packet(&pkt, body, fr.remaining);
			FUZZ_CHECK(codec_encode_size(&pkt) > 0);
			if (pkt.type == CODEC_CONNECT)
				version = pkt.version;
		}
		free(body);
		data += fr.header_len + fr.remaining;
		size -= fr.header_len + fr.remaining;
	}
	return 0;
}
