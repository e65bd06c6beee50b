/*
 * fuzz_roundtrip.c - whatever decodes must encode again: the first byte
 * picks the protocol level, the rest is cut into packets; each packet that
 * decodes is encoded with codec_encode() into a buffer of exactly
 * codec_encode_size() bytes, decoded again and compared field by field
 * (properties included); encoding the second decode must give the same
 * bytes, and codec_encode_publish_head() must be a prefix of them.
 */
#include "fuzz/fuzz_stream.h"
#include "tests/unit/test_codec_compare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_roundtrip(const struct codec_packet *pkt)
{
	size_t size = codec_encode_size(pkt), n, h;
	struct codec_frame fr;
	struct codec_packet again, third;
	uint8_t *a, *b, *body;
	const char *diff;
	int rc;

	FUZZ_CHECK(size > 0);
	a = malloc(size);
	b = malloc(size);
	FUZZ_CHECK(a && b);
	FUZZ_CHECK(codec_encode(pkt, a, size - 1) == 0);
	n = codec_encode(pkt, a, size);
	FUZZ_CHECK(n == size);
	FUZZ_CHECK(codec_frame_scan(a, n, 0, &fr) == 0);
	FUZZ_CHECK(fr.header_len + (size_t)fr.remaining == n);
	body = fuzz_copy(a + fr.header_len, fr.remaining);
	rc = codec_decode(fr.first, body, fr.remaining, pkt->version, &again);
	if (rc != 0)
		fprintf(stderr, "re-decode of %s failed: %d\n", codec_type_name(pkt->type), rc);
	FUZZ_CHECK(rc == 0);
	diff = cmp_packet(pkt, &again);
	if (diff)
		fprintf(stderr, "%s: %s differs after the round trip\n", codec_type_name(pkt->type), diff);
	FUZZ_CHECK(diff == NULL);
	FUZZ_CHECK(codec_encode(&again, b, size) == size);
	FUZZ_CHECK(memcmp(a, b, size) == 0);
	if (pkt->type == CODEC_PUBLISH) {
		h = codec_encode_publish_head(pkt, b, size);
		FUZZ_CHECK(h + pkt->u.publish.payload.len == size);
		FUZZ_CHECK(memcmp(a, b, h) == 0);
	}
	/* Decoding is deterministic: the same bytes, the same packet. */
	FUZZ_CHECK(codec_decode(fr.first, body, fr.remaining, pkt->version, &third) == 0);
	FUZZ_CHECK(cmp_packet(&again, &third) == NULL);
	free(body);
	free(a);
	free(b);
}

static void fuzz_roundtrip_decoded(const struct fuzz_packet *fp)
{
	if (fp->rc == 0)
		fuzz_roundtrip(fp->pkt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t version;

	if (size < 1)
		return 0;
	version = fuzz_version(data[0]);
	data++;
	size--;
	fuzz_stream(data, size, version, fuzz_roundtrip_decoded, NULL);
	return 0;
}
