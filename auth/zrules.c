/*
 * zrules.c - a client's rule list from an auth worker (zrules.h): built
 * once from the answer's JSON, matched level by level in order for every
 * check. Rule lists are short (bounded by ZRULES_MAX) and belong to one
 * client, so a linear first-match scan is the honest cost; nothing is
 * allocated per check.
 */
#include "auth/zrules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct zrule {
	uint32_t len;
	uint16_t lit1;  /* with ZR_LIT: the length of the literal first level */
	uint8_t flags;  /* ZR_PUB | ZR_SUB, ZR_LIT, ZR_ALLOW, ZR_RETAINED | ZR_UNRETAINED */
	uint8_t qos;    /* the QoS levels it applies to, bit q for QoS q (7: all) */
	const char *topic; /* into the set's own allocation */
};

#define ZR_PUB 1u
#define ZR_SUB 2u
/* The first level is literal (no wildcard, no %c/%u): a subject whose
 * first level differs is not covered, which zrules_check sees with one
 * comparison instead of walking the rule. */
#define ZR_LIT 4u
#define ZR_ALLOW 8u
/* "retain": true / false: the rule applies to retained / to
 * non-retained publishes only (neither: "all", or absent) */
#define ZR_RETAINED 16u
#define ZR_UNRETAINED 32u

struct zrules {
	unsigned refs;
	uint32_t n;
	struct zrule r[];
};

struct zrules *zrules_ref(struct zrules *r)
{
	if (r)
		r->refs++;
	return r;
}

void zrules_unref(struct zrules *r)
{
	if (r && --r->refs == 0)
		free(r);
}

size_t zrules_count(const struct zrules *r)
{
	return r ? r->n : 0;
}

/*
 * EMQX's optional conditions of a rule: "qos" (0, 1, 2 or a list of
 * them: the rule applies to those QoS levels only) and "retain" (true,
 * false or "all": the rule applies to retained, to non-retained, or to
 * all publishes). Into *qos (a bit per level) and *flags. Returns 0, or
 * -1 with err.
 */
static int zrules_parse_cond(json_t *o, size_t i, uint8_t *qos, uint8_t *flags, char *err,
			     size_t errlen)
{
	json_t *q = json_object_get(o, "qos"), *r = json_object_get(o, "retain");
	*qos = 7;
	if (q && !json_is_null(q)) {
		size_t n = json_is_array(q) ? json_array_size(q) : 1;
		*qos = 0;
		for (size_t j = 0; j < n; j++) {
			json_t *v = json_is_array(q) ? json_array_get(q, j) : q;
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 2) {
				snprintf(err, errlen, "acl[%zu]: qos is 0, 1, 2 or a list of them", i);
				return -1;
			}
			*qos |= (uint8_t)(1u << json_integer_value(v));
		}
		if (!*qos) {
			snprintf(err, errlen, "acl[%zu]: qos is an empty list", i);
			return -1;
		}
	}
	if (json_is_true(r))
		*flags |= ZR_RETAINED;
	else if (json_is_false(r))
		*flags |= ZR_UNRETAINED;
	else if (r && !json_is_null(r) &&
		 !(json_is_string(r) && strcmp(json_string_value(r), "all") == 0)) {
		snprintf(err, errlen, "acl[%zu]: retain is true, false or \"all\"", i);
		return -1;
	}
	return 0;
}

/* One element's permission and action, or -1 with err. */
static int zrules_parse_one(json_t *o, size_t i, uint8_t *allow, uint8_t *action, const char **topic,
			    size_t *tlen, char *err, size_t errlen)
{
	const char *perm = json_string_value(json_object_get(o, "permission"));
	const char *act = json_string_value(json_object_get(o, "action"));
	json_t *t = json_object_get(o, "topic");
	if (!json_is_object(o) || !perm || !act || !json_is_string(t)) {
		snprintf(err, errlen, "acl[%zu]: needs permission, action and topic strings", i);
		return -1;
	}
	if (strcmp(perm, "allow") == 0)
		*allow = 1;
	else if (strcmp(perm, "deny") == 0)
		*allow = 0;
	else {
		snprintf(err, errlen, "acl[%zu]: permission is allow or deny", i);
		return -1;
	}
	if (strcmp(act, "publish") == 0)
		*action = ZR_PUB;
	else if (strcmp(act, "subscribe") == 0)
		*action = ZR_SUB;
	else if (strcmp(act, "all") == 0)
		*action = ZR_PUB | ZR_SUB;
	else {
		snprintf(err, errlen, "acl[%zu]: action is publish, subscribe or all", i);
		return -1;
	}
	*topic = json_string_value(t);
	*tlen = json_string_length(t);
	if (*tlen == 0 || *tlen > ZRULES_MAX_TOPIC || memchr(*topic, '\0', *tlen)) {
		snprintf(err, errlen, "acl[%zu]: topic empty, too long or holding NUL", i);
		return -1;
	}
	return 0;
}

struct zrules *zrules_from_json(const void *arr_, char *err, size_t errlen)
{
	json_t *arr = (json_t *)arr_;
	struct zrules *r = NULL;
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "acl is not an array");
		return NULL;
	}
	size_t n = json_array_size(arr), bytes = 0;
	if (n > ZRULES_MAX) {
		snprintf(err, errlen, "acl has %zu rules, at most %u", n, ZRULES_MAX);
		return NULL;
	}
	uint8_t allow, action, qos;
	const char *topic;
	size_t tlen;
	for (size_t i = 0; i < n; i++) {
		if (zrules_parse_one(json_array_get(arr, i), i, &allow, &action, &topic, &tlen, err,
				     errlen) < 0 ||
		    zrules_parse_cond(json_array_get(arr, i), i, &qos, &action, err, errlen) < 0)
			return NULL;
		bytes += tlen;
	}
	r = malloc(sizeof *r + n * sizeof r->r[0] + bytes);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->refs = 1;
	r->n = (uint32_t)n;
	char *text = (char *)&r->r[n];
	for (size_t i = 0; i < n; i++) {
		zrules_parse_one(json_array_get(arr, i), i, &allow, &action, &topic, &tlen, err, errlen);
		zrules_parse_cond(json_array_get(arr, i), i, &qos, &action, err, errlen);
		memcpy(text, topic, tlen);
		if (allow)
			action |= ZR_ALLOW;
		r->r[i] = (struct zrule){(uint32_t)tlen, 0, action, qos, text};
		const char *slash = memchr(text, '/', tlen);
		size_t l1 = slash ? (size_t)(slash - text) : tlen;
		bool wild = l1 == 1 && (text[0] == '+' || text[0] == '#');
		bool subst = l1 == 2 && text[0] == '%' && (text[1] == 'c' || text[1] == 'u');
		if (!wild && !subst && l1 <= UINT16_MAX) {
			r->r[i].flags |= ZR_LIT;
			r->r[i].lit1 = (uint16_t)l1;
		}
		text += tlen;
	}
	return r;
}

/* The next level of s[0..n) from *pos: its start and length; *pos moves
 * past its '/'. Returns false when s has no more levels. */
static bool zrules_level(const char *s, size_t n, size_t *pos, bool *more, const char **lv,
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

/*
 * Whether rule r covers subject s: every topic name s matches (s is a
 * topic name, or a filter when `filter`) is matched by r, with %c and %u
 * levels of r standing for cid and user.
 */
static bool zrules_covers(const struct zrule *r, const char *s, size_t sn, bool filter,
			  const char *cid, size_t cid_len, const char *user, size_t user_len,
			  bool has_user)
{
	size_t rp = 0, sp = 0;
	bool rmore = true, smore = true, first = true;
	const char *rl, *sl;
	size_t rlen, slen;
	while (zrules_level(r->topic, r->len, &rp, &rmore, &rl, &rlen)) {
		bool wild = (rlen == 1 && (rl[0] == '#' || rl[0] == '+'));
		/* `$` topics are not matched by a leading wildcard */
		if (first && wild && sn && s[0] == '$')
			return false;
		first = false;
		if (rlen == 1 && rl[0] == '#')
			return true; /* the rest, including the parent level itself */
		if (!zrules_level(s, sn, &sp, &smore, &sl, &slen))
			return false;
		if (filter && slen == 1 && sl[0] == '#')
			return false; /* only a '#' rule covers a '#' */
		if (rlen == 1 && rl[0] == '+')
			continue;
		if (filter && slen == 1 && sl[0] == '+')
			return false; /* a literal does not cover every level */
		if (rlen == 2 && rl[0] == '%' && (rl[1] == 'c' || rl[1] == 'u')) {
			if (rl[1] == 'u' && !has_user)
				return false;
			bool c = rl[1] == 'c';
			rl = c ? cid : user;
			rlen = c ? cid_len : user_len;
			/* a substituted value with '/' or wildcards is no level */
			if (!rl || memchr(rl, '/', rlen) || memchr(rl, '+', rlen) || memchr(rl, '#', rlen))
				return false;
		}
		if (rlen != slen || memcmp(rl, sl, slen) != 0)
			return false;
	}
	return !smore; /* both ended together */
}

bool zrules_check(const struct zrules *r, const char *cid, size_t cid_len, const char *user,
		  size_t user_len, bool has_user, const uint8_t *topic, size_t len,
		  enum zrules_access access, uint8_t qos, bool retain)
{
	if (!r)
		return false;
	const char *t = (const char *)topic;
	size_t tn = len;
	bool filter = access == ZRULES_SUBSCRIBE;
	uint8_t want = access == ZRULES_PUBLISH ? ZR_PUB : ZR_SUB;
	uint8_t qbit = (uint8_t)(1u << (qos < 3 ? qos : 2));
	/* retain conditions are about publishes (EMQX's): a rule for
	 * non-retained ones skips a retained publish and the other way */
	uint8_t skip = access != ZRULES_PUBLISH ? 0 : retain ? ZR_UNRETAINED : ZR_RETAINED;
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
		const struct zrule *x = &r->r[i];
		if (!(x->flags & want) || (x->flags & skip) || !(x->qos & qbit))
			continue;
		if ((x->flags & ZR_LIT) && (x->lit1 != l1 || memcmp(x->topic, t, l1) != 0))
			continue;
		if (zrules_covers(x, t, tn, filter, cid ? cid : "", cid_len, user, user_len, has_user))
			return (x->flags & ZR_ALLOW) != 0;
	}
	return false;
}
