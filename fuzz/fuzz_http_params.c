/*
 * fuzz_http_params.c - what the HTTP server parses itself (http/params.c):
 * the first byte picks the parser, the rest is its input.
 *
 *   0: a query number (http_param_u32) and boolean (http_param_bool)
 *   1: a paging cursor: decode, and when it decodes, encode it back
 *   2+: a POST /api/v1/publish body (jansson, then the property block)
 *
 * Must hold: no crash, no read past the input (each input is copied into
 * a buffer of exactly its size, NUL-terminated only where the server's
 * strings are), a cursor that decodes encodes back to the same text
 * without leading zeros, a property block that parses is one the codec
 * decodes as a PUBLISH's properties (what the engine will do with it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "http/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_http_params: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	uint8_t kind = data[0];
	char *s = malloc(size); /* size - 1 bytes and a NUL, as a query value arrives */
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (kind == 0) {
		uint32_t v;
		bool b;
		if (http_param_u32(s, 1, 1000, &v) == 0)
			check(v >= 1 && v <= 1000, "u32 outside its range");
		if (http_param_bool(s, &b) == 0)
			check(strlen(s) <= 5, "a long boolean");
	} else if (kind == 1) {
		uint64_t c;
		char back[17];
		if (http_cursor_decode(s, &c) == 0) {
			http_cursor_encode(c, back);
			const char *t = s;
			while (*t == '0' && t[1])
				t++;
			check(strcmp(back, t) == 0, "cursor does not encode back");
		}
	} else {
		struct http_publish p;
		char err[256];
		/* the body exactly as received: not NUL-terminated */
		char *body = malloc(size - 1 ? size - 1 : 1);
		if (body) {
			memcpy(body, data + 1, size - 1);
			if (http_publish_parse(body, size - 1, &p, err, sizeof err) == 0) {
				check(p.topic != NULL, "parsed without a topic");
				check(p.qos <= 2, "qos over 2");
				if (p.props_len) {
					struct codec_props pr;
					/* what the parser writes is well-formed; its strings may
					 * still be refused (U+0000), never overrun */
					int rc = codec_props_decode(p.props, (uint32_t)p.props_len,
								    CODEC_PUBLISH, &pr);
					check(rc == 0 || rc == -MQTT_RC_MALFORMED ||
						  rc == -MQTT_RC_PROTOCOL_ERROR,
					      "property block with an unexpected error");
				}
			}
			http_publish_clear(&p);
			free(body);
		}
	}
	free(s);
	return 0;
}
