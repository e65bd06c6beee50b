/*
 * rules.c - a client's own rules (rules.h): read once from EMQX's JSON
 * with jansson into one allocation (the rules, then their filters'
 * text), then first-match checks level by level, nothing allocated.
 * Rule lists are short and belong to one client, so a linear scan is the
 * honest cost; a literal first level makes most misses one comparison.
 */
#include "auth/rules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rule {
	uint32_t len;
	uint16_t lit1;  /* with R_LIT: the length of the literal first level */
	uint8_t flags;  /* R_PUB | R_SUB, R_LIT, R_ALLOW, R_RETAINED | R_UNRETAINED, R_SUBST */
	uint8_t qos;    /* the QoS levels it applies to, bit q for QoS q (7: all) */
	const char *topic; /* into the set's own allocation */
};

#define R_PUB 1u
#define R_SUB 2u
/* The first level is literal (no wildcard, no %c/%u): a subject whose
 * first level differs is not covered, which rules_check sees with one
 * comparison instead of walking the rule. */
#define R_LIT 4u
#define R_ALLOW 8u
/* "retain": true / false: the rule applies to retained / to
 * non-retained publishes only (neither: "all", or absent) */
#define R_RETAINED 16u
#define R_UNRETAINED 32u
/* %c and %u levels are substituted at check time (built without who) */
#define R_SUBST 64u

struct rules {
	unsigned refs;
	uint32_t n;
	struct rule r[];
};

struct rules *rules_ref(struct rules *r)
{
	if (r)
		r->refs++;
	return r;
}

void rules_unref(struct rules *r)
{
	if (r && --r->refs == 0)
		free(r);
}

size_t rules_count(const struct rules *r)
{
	return r ? r->n : 0;
}

/* ---- matching ------------------------------------------------------------ */

/* The next level of s[0..n) from *pos: its start and length; *pos moves
 * past its '/'. Returns false when s has no more levels. */
static bool rules_level(const char *s, size_t n, size_t *pos, bool *more, const char **lv,
			size_t *lvlen)
{
	if (!*more)
		return false;
	const char *start = s + *pos;
	const char *slash = memchr(start, '/', n - *pos);
	*lv = start;
	*lvlen = slash ? (size_t)(slash - start) : n - *pos;
	*pos += *lvlen + 1;
	*more = slash != NULL;
	return true;
}

/* Whether a name may stand as a topic level: one level, no wildcard
 * (Mosquitto refuses such names in patterns the same way). */
static bool rules_name_safe(const char *s, size_t n)
{
	return s && !memchr(s, '/', n) && !memchr(s, '+', n) && !memchr(s, '#', n) && !memchr(s, 0, n);
}

static bool rules_is_subst(const char *l, size_t n)
{
	return n == 2 && l[0] == '%' && (l[1] == 'c' || l[1] == 'u');
}

/*
 * Whether filter f[0..fn) covers subject s[0..sn): every topic name s
 * matches (s is a topic name, or a filter when `filter`) is matched by
 * f. who non-NULL: %c and %u levels of f stand for its names.
 */
static bool rules_covers(const char *f, size_t fn, const char *s, size_t sn, bool filter,
			 const struct rules_who *who)
{
	size_t fp = 0, sp = 0;
	bool fmore = true, smore = true, first = true;
	const char *fl, *sl;
	size_t flen, slen;
	while (rules_level(f, fn, &fp, &fmore, &fl, &flen)) {
		bool wild = flen == 1 && (fl[0] == '#' || fl[0] == '+');
		/* [MQTT-4.7.2-1]: `$` topics are not matched by a leading wildcard */
		if (first && wild && sn && s[0] == '$')
			return false;
		first = false;
		if (flen == 1 && fl[0] == '#')
			return true; /* the rest, the parent level included [MQTT-4.7.1-2] */
		if (!rules_level(s, sn, &sp, &smore, &sl, &slen))
			return false;
		if (filter && slen == 1 && sl[0] == '#')
			return false; /* only a '#' rule covers a '#' */
		if (flen == 1 && fl[0] == '+')
			continue;
		if (filter && slen == 1 && sl[0] == '+')
			return false; /* a literal does not cover every level */
		if (who && rules_is_subst(fl, flen)) {
			bool c = fl[1] == 'c';
			fl = c ? who->cid : who->user;
			flen = c ? who->cid_len : who->user_len;
			if (!rules_name_safe(fl, flen))
				return false; /* no user name, or no single level */
		}
		if (flen != slen || memcmp(fl, sl, slen) != 0)
			return false;
	}
	return !smore; /* both ended together */
}

bool rules_filter_covers(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return rules_covers((const char *)a, al, (const char *)b, bl, true, NULL);
}

bool rules_topic_matches(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl)
{
	return rules_covers((const char *)f, fl, (const char *)t, tl, false, NULL);
}

bool rules_check(const struct rules *r, const struct rules_who *who, const uint8_t *topic,
		 size_t len, enum rules_access access, uint8_t qos, bool retain)
{
	if (!r)
		return false;
	const char *t = (const char *)topic;
	size_t tn = len;
	bool filter = access == RULES_SUBSCRIBE;
	uint8_t want = access == RULES_PUBLISH ? R_PUB : R_SUB;
	uint8_t qbit = (uint8_t)(1u << (qos < 3 ? qos : 2));
	/* retain conditions are about publishes (EMQX's): a rule for
	 * non-retained ones skips a retained publish and the other way */
	uint8_t skip = access != RULES_PUBLISH ? 0 : retain ? R_UNRETAINED : R_RETAINED;
	if (filter && tn > 7 && memcmp(t, "$share/", 7) == 0) {
		/* the group is no topic level: look at the filter behind it */
		const char *slash = memchr(t + 7, '/', tn - 7);
		if (!slash)
			return false;
		tn -= (size_t)(slash + 1 - t);
		t = slash + 1;
	}
	const char *s1 = memchr(t, '/', tn);
	size_t l1 = s1 ? (size_t)(s1 - t) : tn;
	for (uint32_t i = 0; i < r->n; i++) {
		const struct rule *x = &r->r[i];
		if (!(x->flags & want) || (x->flags & skip) || !(x->qos & qbit))
			continue;
		if ((x->flags & R_LIT) && (x->lit1 != l1 || memcmp(x->topic, t, l1) != 0))
			continue;
		if (rules_covers(x->topic, x->len, t, tn, filter, (x->flags & R_SUBST) ? who : NULL))
			return (x->flags & R_ALLOW) != 0;
	}
	return false;
}

/* ---- reading ------------------------------------------------------------- */

/* One rule as read, before it is copied into the set. */
struct rule_in {
	uint8_t flags, qos;
	const char *text; /* the filter: the JSON string's, or buf */
	size_t len;
	char *buf;        /* substituted (opts.who), malloc'd */
};

static int rules_fail(char *err, size_t errlen, size_t i, const char *what)
{
	snprintf(err, errlen, "rule %zu: %s", i + 1, what);
	return -1;
}

/* EMQX's optional conditions: "qos" (0, 1, 2 or a list of them) and
 * "retain" (true, false or "all"). Returns 0 or -1 with err. */
static int rules_read_cond(json_t *o, size_t i, struct rule_in *x, char *err, size_t errlen)
{
	json_t *q = json_object_get(o, "qos"), *rt = json_object_get(o, "retain");
	x->qos = 7;
	if (q && !json_is_null(q)) {
		size_t n = json_is_array(q) ? json_array_size(q) : 1;
		x->qos = 0;
		for (size_t j = 0; j < n; j++) {
			json_t *v = json_is_array(q) ? json_array_get(q, j) : q;
			if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2)
				return rules_fail(err, errlen, i, "qos is 0, 1, 2 or a list of them");
			x->qos |= (uint8_t)(1u << json_integer_value(v));
		}
		if (!x->qos)
			return rules_fail(err, errlen, i, "qos is an empty list");
	}
	if (json_is_true(rt))
		x->flags |= R_RETAINED;
	else if (json_is_false(rt))
		x->flags |= R_UNRETAINED;
	else if (rt && !json_is_null(rt) &&
		 !(json_is_string(rt) && strcmp(json_string_value(rt), "all") == 0))
		return rules_fail(err, errlen, i, "retain is true, false or \"all\"");
	return 0;
}

/* '+' and '#' as whole levels, '#' the last. */
static bool rules_filter_ok(const char *t, size_t n)
{
	size_t pos = 0, ll;
	bool more = true;
	const char *lv;
	while (rules_level(t, n, &pos, &more, &lv, &ll)) {
		bool hash = ll == 1 && lv[0] == '#', plus = ll == 1 && lv[0] == '+';
		if ((hash && more) || (!hash && !plus && (memchr(lv, '#', ll) || memchr(lv, '+', ll))))
			return false;
	}
	return true;
}

/*
 * x->buf: text[0..n) with its %c/%u levels replaced by who's names.
 * Returns 1, 0 when the rule can never match (a name missing or not a
 * single level: dropped), -1 with err.
 */
static int rules_substitute(struct rule_in *x, const char *text, size_t n,
			    const struct rules_who *who, size_t i, char *err, size_t errlen)
{
	size_t pos = 0, ll, out = 0;
	bool more = true;
	const char *lv;
	while (rules_level(text, n, &pos, &more, &lv, &ll)) { /* the length first */
		if (rules_is_subst(lv, ll)) {
			bool c = lv[1] == 'c';
			if (!rules_name_safe(c ? who->cid : who->user, c ? who->cid_len : who->user_len))
				return 0;
			ll = c ? who->cid_len : who->user_len;
		}
		out += ll + more;
	}
	if (out > RULES_MAX_TOPIC)
		return rules_fail(err, errlen, i, "a topic over 65535 bytes");
	if (!(x->buf = malloc(out ? out : 1)))
		return rules_fail(err, errlen, i, "out of memory");
	pos = out = 0;
	more = true;
	while (rules_level(text, n, &pos, &more, &lv, &ll)) {
		if (rules_is_subst(lv, ll)) {
			bool c = lv[1] == 'c';
			lv = c ? who->cid : who->user;
			ll = c ? who->cid_len : who->user_len;
		}
		memcpy(x->buf + out, lv, ll);
		out += ll;
		if (more)
			x->buf[out++] = '/';
	}
	x->text = x->buf;
	x->len = out;
	return 1;
}

/* One array element into x. Returns 1, 0 (dropped), or -1 with err. */
static int rules_read_one(json_t *o, size_t i, const struct rules_opts *opt, struct rule_in *x,
			  char *err, size_t errlen)
{
	memset(x, 0, sizeof *x);
	if (!json_is_object(o))
		return rules_fail(err, errlen, i, "not an object");
	if (opt->strict) {
		const char *key;
		json_t *v;
		json_object_foreach(o, key, v)
		{
			if (strcmp(key, "permission") != 0 && strcmp(key, "action") != 0 &&
			    strcmp(key, "topic") != 0 && strcmp(key, "qos") != 0 &&
			    strcmp(key, "retain") != 0) {
				char what[80];
				snprintf(what, sizeof what, "the key \"%.40s\", which midge does not apply",
					 key);
				return rules_fail(err, errlen, i, what);
			}
		}
	}
	const char *perm = json_string_value(json_object_get(o, "permission"));
	const char *act = json_string_value(json_object_get(o, "action"));
	json_t *t = json_object_get(o, "topic");
	if (!perm || !act || !json_is_string(t))
		return rules_fail(err, errlen, i, "needs permission, action and topic strings");
	if (strcmp(perm, "allow") == 0)
		x->flags |= R_ALLOW;
	else if (strcmp(perm, "deny") != 0)
		return rules_fail(err, errlen, i, "permission is allow or deny");
	if (strcmp(act, "publish") == 0)
		x->flags |= R_PUB;
	else if (strcmp(act, "subscribe") == 0)
		x->flags |= R_SUB;
	else if (strcmp(act, "all") == 0)
		x->flags |= R_PUB | R_SUB;
	else
		return rules_fail(err, errlen, i, "action is publish, subscribe or all");
	if (rules_read_cond(o, i, x, err, errlen) < 0)
		return -1;
	const char *text = json_string_value(t);
	size_t n = json_string_length(t);
	if (n == 0 || n > RULES_MAX_TOPIC || memchr(text, '\0', n))
		return rules_fail(err, errlen, i, "topic empty, over 65535 bytes or holding NUL");
	if (opt->strict && !rules_filter_ok(text, n))
		return rules_fail(err, errlen, i, "'+' and '#' must be whole levels, '#' the last");
	if (opt->who)
		return rules_substitute(x, text, n, opt->who, i, err, errlen);
	x->text = text;
	x->len = n;
	size_t pos = 0, ll;
	bool more = true;
	const char *lv;
	while (rules_level(text, n, &pos, &more, &lv, &ll))
		if (rules_is_subst(lv, ll))
			x->flags |= R_SUBST;
	return 1;
}

struct rules *rules_from_json(const void *array, const struct rules_opts *o, char *err,
			      size_t errlen)
{
	json_t *a = (json_t *)array;
	struct rules *r = NULL;
	struct rule_in *in = NULL;
	size_t n = 0, kept = 0, bytes = 0;
	if (!json_is_array(a)) {
		snprintf(err, errlen, "the rules are not a JSON array");
		return NULL;
	}
	n = json_array_size(a);
	if (n > o->max) {
		snprintf(err, errlen, "%zu rules, at most %zu", n, o->max);
		return NULL;
	}
	if (n && !(in = calloc(n, sizeof *in))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = rules_read_one(json_array_get(a, i), i, o, &in[kept], err, errlen);
		if (rc < 0)
			goto out;
		if (rc > 0)
			bytes += in[kept++].len;
	}
	if (!(r = malloc(sizeof *r + kept * sizeof r->r[0] + bytes))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->refs = 1;
	r->n = (uint32_t)kept;
	char *text = (char *)&r->r[kept];
	for (size_t i = 0; i < kept; i++) {
		struct rule *x = &r->r[i];
		memcpy(text, in[i].text, in[i].len);
		*x = (struct rule){(uint32_t)in[i].len, 0, in[i].flags, in[i].qos, text};
		const char *slash = memchr(text, '/', in[i].len);
		size_t l1 = slash ? (size_t)(slash - text) : in[i].len;
		bool wild = l1 == 1 && (text[0] == '+' || text[0] == '#');
		bool subst = (x->flags & R_SUBST) && rules_is_subst(text, l1);
		if (!wild && !subst && l1 <= UINT16_MAX) {
			x->flags |= R_LIT;
			x->lit1 = (uint16_t)l1;
		}
		text += in[i].len;
	}
out:
	for (size_t i = 0; i < n && in; i++)
		free(in[i].buf);
	free(in);
	return r;
}

struct rules *rules_parse(const char *json, size_t len, const struct rules_opts *o, char *err,
			  size_t errlen)
{
	if (len > RULES_MAX_JSON) {
		snprintf(err, errlen, "rules over %u bytes", RULES_MAX_JSON);
		return NULL;
	}
	json_error_t je;
	json_t *a = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!a) {
		snprintf(err, errlen, "not JSON: %s", je.text);
		return NULL;
	}
	struct rules *r = rules_from_json(a, o, err, errlen);
	json_decref(a);
	return r;
}
