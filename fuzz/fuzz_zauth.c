/*
 * fuzz_zauth.c - what an auth worker says (auth/zproto.c) and the rules it
 * gives (auth/rules.c) on arbitrary bytes. The input up to the first NUL
 * is one message from a worker for zproto_parse(); each line after it is a
 * query "cid TAB user TAB topic" asked of the answer's rules, if any. The
 * parser must accept or refuse without a crash, a leak or a read past the
 * input; an accepted answer keeps its bounds; a refusal says why; and for
 * a topic without wildcards, subscribing to it as a filter is allowed
 * exactly when receiving it is (the filter covers that one topic, so the
 * same rule must match first). An enhanced authentication answer
 * (`continue`, or any answer with "data") holds its decoded data within
 * ZPROTO_MAX_DATA.
 */
#include "auth/zproto.h"
#include "auth/rules.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_query(const struct rules *r, const char *q, size_t n)
{
	const char *t1 = memchr(q, '\t', n);
	if (!t1)
		return;
	const char *t2 = memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - q));
	if (!t2)
		return;
	const char *topic = t2 + 1;
	size_t tn = n - (size_t)(topic - q), cn = (size_t)(t1 - q), un = (size_t)(t2 - t1 - 1);
	bool has_user = un > 0;
	const uint8_t *t = (const uint8_t *)topic;
	/* the QoS and retain flag from the user name's first byte */
	uint8_t qos = un ? (uint8_t)(t1[1] % 3) : 0;
	bool retain = un && (t1[1] & 4);
	struct rules_who who = {q, cn, has_user ? t1 + 1 : NULL, un};
	bool pub = rules_check(r, &who, t, tn, RULES_PUBLISH, qos, retain);
	bool rcv = rules_check(r, &who, t, tn, RULES_RECEIVE, qos, retain);
	bool sub = rules_check(r, &who, t, tn, RULES_SUBSCRIBE, qos, false);
	(void)pub;
	bool wild = memchr(topic, '+', tn) || memchr(topic, '#', tn) ||
		    (tn >= 7 && memcmp(topic, "$share/", 7) == 0);
	/* retain is a publish's condition: receiving ignores it as
	 * subscribing does */
	if (!wild)
		FUZZ_CHECK(sub == rcv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t mlen = nul ? (size_t)(nul - data) : size;
	struct zproto_answer a;
	char err[200] = "";
	int kind = zproto_parse(data, mlen, &a, err, sizeof err);
	if (kind < 0) {
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(!a.username && !a.rules && !a.data);
		return 0;
	}
	FUZZ_CHECK(kind == ZPROTO_READY || kind == ZPROTO_ANSWER);
	if (kind == ZPROTO_READY)
		return 0;
	if (a.username) {
		FUZZ_CHECK(a.allow);
		FUZZ_CHECK(a.username_len > 0 && a.username_len <= ZPROTO_MAX_USERNAME);
		FUZZ_CHECK(strlen(a.username) == a.username_len);
	}
	/* one result: allow, deny, continue or defer */
	FUZZ_CHECK(a.allow + a.cont + a.defer <= 1);
	if (!a.allow && !a.cont && !a.defer)
		FUZZ_CHECK(a.reason_code >= 0x80);
	/* a defer carries nothing of an allow's (its fields are not read) */
	if (a.defer)
		FUZZ_CHECK(!a.username && !a.rules && !a.has_expiry_max && !a.reason_code);
	/* enhanced authentication's data: decoded, within the property's bound */
	FUZZ_CHECK(a.has_data == (a.data != NULL));
	FUZZ_CHECK(a.data_len <= ZPROTO_MAX_DATA);
	if (!a.has_data)
		FUZZ_CHECK(a.data_len == 0);
	FUZZ_CHECK(rules_count(a.rules) <= RULES_MAX_WORKER);
	if (a.rules && nul) {
		const char *q = (const char *)nul + 1, *end = (const char *)data + size;
		while (q < end) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));
			size_t n = nl ? (size_t)(nl - q) : (size_t)(end - q);
			fuzz_query(a.rules, q, n);
			q += n + 1;
		}
	}
	zproto_answer_clear(&a);
	return 0;
}
