/*
 * fuzz_http.c - the HTTP request-head parser and the WebSocket listener's
 * rules on arbitrary bytes. The first byte picks a split point; the rest
 * is fed in two parts (as two reads) and whole, and both must agree. For
 * a complete head: every span lies inside the head, the handshake
 * decision is a known answer (with and without http_dir and a path), a
 * 101 carries a valid key, and the path as a file name never climbs out
 * of its directory.
 */
#include "codec/http.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_span_in(struct http_span s, uint32_t len)
{
	FUZZ_CHECK(s.off <= len && s.len <= len - s.off);
}

static void fuzz_decided(const struct http_request *r, const uint8_t *buf, const char *path,
			 bool files)
{
	struct http_ws_answer a;
	http_ws_decide(r, buf, path, files, &a);
	switch (a.status) {
	case HTTP_ANSWER_UPGRADE:
		FUZZ_CHECK(a.key.len == 24);
		fuzz_span_in(a.key, r->head_len);
		FUZZ_CHECK(!a.subprotocol || strcmp(a.subprotocol, "mqtt") == 0 ||
			   strcmp(a.subprotocol, "mqttv3.1") == 0);
		break;
	case HTTP_ANSWER_FILE:
		FUZZ_CHECK(files);
		break;
	case HTTP_ANSWER_BAD_REQUEST:
	case HTTP_ANSWER_NOT_FOUND:
	case HTTP_ANSWER_METHOD:
	case HTTP_ANSWER_UPGRADE_REQUIRED:
		FUZZ_CHECK(a.why != NULL);
		break;
	default:
		FUZZ_CHECK(!"unknown answer");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = data[0];
	const uint8_t *buf = data + 1;
	size_t len = size - 1;
	if (cut > len)
		cut = len;

	struct http_request whole, split;
	http_request_init(&whole);
	int rw = http_request_feed(&whole, buf, len);
	http_request_init(&split);
	int rs = http_request_feed(&split, buf, cut);
	FUZZ_CHECK(rs == HTTP_MORE || rs == HTTP_DONE || rs == HTTP_ERR_SYNTAX || rs == HTTP_ERR_FIELDS);
	rs = http_request_feed(&split, buf, len);
	FUZZ_CHECK(rs == rw);
	FUZZ_CHECK(rw == HTTP_MORE || rw == HTTP_DONE || rw == HTTP_ERR_SYNTAX || rw == HTTP_ERR_FIELDS);
	if (rw != HTTP_DONE)
		return 0;
	FUZZ_CHECK(split.head_len == whole.head_len && split.n_fields == whole.n_fields);
	FUZZ_CHECK(memcmp(split.fields, whole.fields, sizeof(whole.fields)) == 0);
	FUZZ_CHECK(whole.head_len <= len && whole.n_fields <= HTTP_MAX_FIELDS);
	fuzz_span_in(whole.method, whole.head_len);
	fuzz_span_in(whole.target, whole.head_len);
	fuzz_span_in(whole.path, whole.head_len);
	fuzz_span_in(whole.query, whole.head_len);
	for (uint32_t i = 0; i < whole.n_fields; i++) {
		fuzz_span_in(whole.fields[i].name, whole.head_len);
		fuzz_span_in(whole.fields[i].value, whole.head_len);
		FUZZ_CHECK(whole.fields[i].name.len > 0);
	}
	fuzz_decided(&whole, buf, NULL, false);
	fuzz_decided(&whole, buf, NULL, true);
	fuzz_decided(&whole, buf, "/mqtt", false);

	char file[256];
	int n = http_path_file(buf + whole.path.off, whole.path.len, file, sizeof(file));
	if (n >= 0) {
		FUZZ_CHECK((size_t)n == strlen(file) && (size_t)n < sizeof(file));
		FUZZ_CHECK(file[0] != '/' && file[0] != '.');
		FUZZ_CHECK(!strstr(file, "/.") && !strchr(file, '\\'));
	}
	return 0;
}
