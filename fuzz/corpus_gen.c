/*
 * corpus_gen.c - writes the seed corpus of the codec fuzzers from the unit
 * tests' hand-written vectors: `fuzz/corpus-gen DIR` creates DIR/valid-NAME
 * and DIR/bad-NAME (one packet each) and DIR/stream-v5 (a CONNECT 5 and
 * every other MQTT 5 vector after it). Each file starts with the byte that
 * makes the harness use the vector's protocol level (see fuzz_version()).
 * Run by `make fuzz-corpus`; the output is checked in.
 */
#include "tests/unit/test_codec_vectors.h"

#include <stdio.h>
#include <string.h>

static uint8_t version_byte(uint8_t v)
{
	return v == CODEC_V31 ? 1 : v == CODEC_V311 ? 2 : v == CODEC_V5 ? 3 : 0;
}

static int write_seed(const char *dir, const char *prefix, const char *name, uint8_t version,
		      const uint8_t *b, size_t n)
{
	char path[1024];
	FILE *f;
	uint8_t vb = version_byte(version);

	snprintf(path, sizeof(path), "%s/%s-%s", dir, prefix, name);
	if (!(f = fopen(path, "wb")))
		return -1;
	fwrite(&vb, 1, 1, f);
	fwrite(b, 1, n, f);
	return fclose(f);
}

int main(int argc, char **argv)
{
	uint8_t stream[4096];
	size_t total = 0;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < N_VALID; i++) {
		const struct vec *v = &valid_vectors[i];
		rc |= write_seed(argv[1], "valid", v->name, v->version, v->bytes, v->len);
		if (strcmp(v->name, "connect_v5_will") == 0 ||
		    (v->version == CODEC_V5 && total + v->len <= sizeof(stream) &&
		     v->bytes[0] != 0x10)) {
			memcpy(stream + total, v->bytes, v->len);
			total += v->len;
		}
	}
	for (size_t i = 0; i < N_BAD; i++) {
		const struct bad *b = &bad_vectors[i];
		rc |= write_seed(argv[1], "bad", b->name, b->version, b->bytes, b->len);
	}
	rc |= write_seed(argv[1], "stream", "v5", 0, stream, total);
	return rc ? 1 : 0;
}
