/*
 * fuzz_acl.c - auth/acl*.c on arbitrary text. The input up to the first NUL
 * is an acl_file; what follows is queries, one a line: "cid TAB topic" for
 * an anonymous client, "cid TAB user TAB topic" for a named one. The
 * parser must accept or refuse without a crash, a leak or a read past the
 * text; for each query both decisions must run, and the subscription
 * decision must never refuse what the topic decision allows: a topic
 * readable by the client is readable through itself as a filter, through
 * "#" (unless it starts with $) and through each level made "+".
 */
#include "auth/acl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                           \
		}                                                                          \
	} while (0)

static bool fuzz_readable(const struct acl *a, const struct acl_who *w, const char *f, size_t n)
{
	return acl_filter_readable(a, w, (const uint8_t *)f, n);
}

/* One query line q[0..n). */
static void fuzz_query(const struct acl *a, const char *q, size_t n)
{
	const char *t1 = memchr(q, '\t', n);
	if (!t1)
		return;
	const char *t2 = memchr(t1 + 1, '\t', n - (size_t)(t1 + 1 - q));
	struct acl_who w = {q, (size_t)(t1 - q), NULL, 0, false};
	const char *topic = t1 + 1;
	if (t2) {
		w.user = t1 + 1;
		w.user_len = (size_t)(t2 - w.user);
		w.has_user = true;
		topic = t2 + 1;
	}
	size_t tn = n - (size_t)(topic - q);
	if (tn == 0 || tn > 4096)
		return;
	(void)fuzz_readable(a, &w, topic, tn); /* any filter: no crash */
	if (memchr(topic, '+', tn) || memchr(topic, '#', tn))
		return;
	bool r = acl_check(a, &w, (const uint8_t *)topic, tn, ACL_READ);
	(void)acl_check(a, &w, (const uint8_t *)topic, tn, ACL_WRITE);
	/* "$share/G/F" as a filter is a shared subscription to F, not to
	 * the topic name of the same spelling: the invariants below compare
	 * a topic with filters that match it, which such a name has none of */
	if (!r || (tn >= 7 && memcmp(topic, "$share/", 7) == 0))
		return;
	FUZZ_CHECK(fuzz_readable(a, &w, topic, tn));
	if (topic[0] != '$')
		FUZZ_CHECK(fuzz_readable(a, &w, "#", 1));
	char f[4200];
	size_t start = 0;
	for (int levels = 0; start <= tn && levels < 8; levels++) {
		const char *slash = memchr(topic + start, '/', tn - start);
		size_t end = slash ? (size_t)(slash - topic) : tn;
		size_t fn = 0;
		memcpy(f, topic, start);
		fn = start;
		f[fn++] = '+';
		memcpy(f + fn, topic + end, tn - end);
		fn += tn - end;
		if (!(start == 0 && topic[0] == '$'))
			FUZZ_CHECK(fuzz_readable(a, &w, f, fn));
		if (!slash)
			break;
		start = end + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nul = memchr(text, '\0', size);
	size_t tlen = nul ? (size_t)(nul - text) : size;
	char err[400];
	struct acl *a = acl_parse(text, tlen, "fuzz", NULL, NULL, err, sizeof err);
	if (!a) {
		FUZZ_CHECK(err[0] != '\0');
		return 0;
	}
	size_t rules, users;
	acl_counts(a, &rules, &users);
	FUZZ_CHECK(users <= rules);
	if (nul) {
		const char *q = nul + 1;
		size_t left = size - tlen - 1;
		for (int i = 0; left > 0 && i < 64; i++) {
			const char *nl = memchr(q, '\n', left);
			size_t n = nl ? (size_t)(nl - q) : left;
			fuzz_query(a, q, n);
			if (!nl)
				break;
			left -= n + 1;
			q = nl + 1;
		}
	}
	acl_free(a);
	return 0;
}
