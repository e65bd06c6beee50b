/*
 * fuzz_proxy.c - the PROXY protocol header parser on arbitrary bytes. The
 * first byte's low bit picks the version the listener expects. A header
 * never claims more bytes than it was given; every shorter prefix of a
 * complete header is "more", never an error nor a different header; the
 * common name lies inside the header; an error has a reason.
 */
#include "codec/proxy.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int version = (data[0] & 1) + 1;
	const uint8_t *buf = data + 1;
	size_t len = size - 1;
	struct proxy_info pi;
	int rc = proxy_parse(buf, len, version, &pi);
	if (rc == PROXY_ERR) {
		FUZZ_CHECK(pi.why != NULL);
		return 0;
	}
	FUZZ_CHECK(rc >= 0 && (size_t)rc <= len);
	if (rc == PROXY_MORE)
		return 0;
	FUZZ_CHECK(rc <= (version == 1 ? PROXY_V1_MAX : PROXY_V2_MAX));
	FUZZ_CHECK(pi.family == PROXY_LOCAL || pi.family == PROXY_INET || pi.family == PROXY_INET6 ||
		   pi.family == PROXY_UNIX);
	FUZZ_CHECK(pi.cn_len == 0 || (pi.cn_off <= (uint32_t)rc && pi.cn_len <= (uint32_t)rc - pi.cn_off));
	FUZZ_CHECK(strlen(pi.path) <= PROXY_PATH_MAX);
	FUZZ_CHECK(!pi.cert_verified || pi.tls);
	struct proxy_info again;
	for (size_t i = 0; i < (size_t)rc; i++)
		FUZZ_CHECK(proxy_parse(buf, i, version, &again) == PROXY_MORE);
	FUZZ_CHECK(proxy_parse(buf, (size_t)rc, version, &again) == rc);
	return 0;
}
