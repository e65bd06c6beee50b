/*
 * rules.c - a client's own ACL rules (rules.h): EMQX's JSON format read
 * with jansson, %c/%u substituted once at parse time, then first-match
 * checks over the list.
 */
#include "auth/rules.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rule {
	bool allow;
	unsigned actions; /* RULES_PUBLISH | RULES_SUBSCRIBE */
	size_t len;
	uint8_t *filter;
};

struct rules {
	size_t n;
	struct rule r[];
};

static size_t rules_level_end(const uint8_t *p, size_t n, size_t i)
{
	while (i < n && p[i] != '/')
		i++;
	return i;
}

static bool rules_level_is(const uint8_t *p, size_t b, size_t e, char c)
{
	return e - b == 1 && p[b] == (uint8_t)c;
}

bool rules_filter_covers(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	/* [MQTT-4.7.2-1]: a wildcard first level does not match $ topics */
	if (bl && b[0] == '$' && al && (a[0] == '+' || a[0] == '#'))
		return false;
	size_t ai = 0, bi = 0;
	bool b_done = false;
	for (;;) {
		size_t ae = rules_level_end(a, al, ai);
		if (rules_level_is(a, ai, ae, '#'))
			return true; /* the rest, the parent level included [MQTT-4.7.1-2] */
		if (b_done)
			return false;
		size_t be = rules_level_end(b, bl, bi);
		if (rules_level_is(b, bi, be, '#'))
			return false; /* b reaches deeper than a's levels */
		if (rules_level_is(a, ai, ae, '+')) {
			/* covers a literal level or b's own `+` */
		} else if (rules_level_is(b, bi, be, '+') || ae - ai != be - bi ||
			   memcmp(a + ai, b + bi, ae - ai) != 0) {
			return false;
		}
		bool a_last = ae == al, b_last = be == bl;
		if (a_last)
			return b_last;
		ai = ae + 1;
		if (b_last)
			b_done = true;
		else
			bi = be + 1;
	}
}

/* A topic name is a filter without wildcards: the filter that covers it
 * matches it. */
bool rules_topic_matches(const uint8_t *f, size_t fl, const uint8_t *t, size_t tl)
{
	return rules_filter_covers(f, fl, t, tl);
}

/* `$share/GROUP/FILTER` is checked as FILTER. */
static void rules_unshare(const uint8_t **p, size_t *n)
{
	if (*n > 7 && memcmp(*p, "$share/", 7) == 0) {
		const uint8_t *slash = memchr(*p + 7, '/', *n - 7);
		if (slash) {
			*n -= (size_t)(slash + 1 - *p);
			*p = slash + 1;
		}
	}
}

bool rules_check(const struct rules *r, unsigned action, const uint8_t *topic, size_t len)
{
	if (!r)
		return false;
	if (action == RULES_SUBSCRIBE)
		rules_unshare(&topic, &len);
	for (size_t i = 0; i < r->n; i++) {
		const struct rule *x = &r->r[i];
		if (!(x->actions & action))
			continue;
		bool hit = action == RULES_SUBSCRIBE ? rules_filter_covers(x->filter, x->len, topic, len)
						     : rules_topic_matches(x->filter, x->len, topic, len);
		if (hit)
			return x->allow;
	}
	return false;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->r[i].filter);
	free(r);
}

size_t rules_count(const struct rules *r)
{
	return r ? r->n : 0;
}

/* Whether a substituted name may stand as a topic level: one level, no
 * wildcard (Mosquitto refuses such names in patterns the same way). */
static bool rules_name_safe(const char *s, size_t n)
{
	return !memchr(s, '/', n) && !memchr(s, '+', n) && !memchr(s, '#', n) && !memchr(s, 0, n);
}

/*
 * Builds x->filter from text[0..n) with %c/%u substituted. Returns 1 when
 * built, 0 when the rule can never match (skipped), -1 with err.
 */
static int rules_build_filter(struct rule *x, const char *text, size_t n,
			      const struct rules_who *who, char *err, size_t errlen)
{
	if (n == 0 || memchr(text, 0, n)) {
		snprintf(err, errlen, "an empty topic, or one with a NUL byte");
		return -1;
	}
	/* worst case every level is a substituted name */
	size_t cap = n + 1;
	size_t levels = 1;
	for (size_t i = 0; i < n; i++)
		levels += text[i] == '/';
	size_t big = who->cid_len > who->user_len ? who->cid_len : who->user_len;
	cap += levels * big;
	if (cap > RULES_MAX_TOPIC + 1)
		cap = RULES_MAX_TOPIC + 1; /* the bound is checked as it fills */
	uint8_t *out = malloc(cap);
	if (!out) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t o = 0, i = 0;
	int rc = 1;
	for (;;) {
		size_t e = rules_level_end((const uint8_t *)text, n, i);
		const char *lv = text + i;
		size_t ll = e - i;
		bool hash = ll == 1 && lv[0] == '#', plus = ll == 1 && lv[0] == '+';
		if ((hash && e != n) || (!hash && !plus && (memchr(lv, '#', ll) || memchr(lv, '+', ll)))) {
			snprintf(err, errlen, "'+' and '#' must be whole levels, '#' the last");
			rc = -1;
			break;
		}
		bool subst = ll == 2 && lv[0] == '%' && (lv[1] == 'c' || lv[1] == 'u');
		if (subst) {
			bool cid = lv[1] == 'c';
			lv = cid ? who->cid : who->user;
			ll = cid ? who->cid_len : who->user_len;
			if (!lv || !rules_name_safe(lv, ll)) {
				rc = 0;
				break;
			}
		}
		if (cap - o < ll + 1) {
			snprintf(err, errlen, "a topic over %u bytes", RULES_MAX_TOPIC);
			rc = -1;
			break;
		}
		memcpy(out + o, lv, ll);
		o += ll;
		if (e == n)
			break;
		out[o++] = '/';
		i = e + 1;
	}
	if (rc == 1) {
		x->filter = out;
		x->len = o;
	} else {
		free(out);
	}
	return rc;
}

/* One array element into x. Same returns as rules_build_filter(). */
static int rules_one(json_t *o, struct rule *x, const struct rules_who *who, char *err,
		     size_t errlen)
{
	if (!json_is_object(o)) {
		snprintf(err, errlen, "a rule is not an object");
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "permission") != 0 && strcmp(key, "action") != 0 &&
		    strcmp(key, "topic") != 0) {
			snprintf(err, errlen, "a rule has the key \"%.40s\", which midge does not apply",
				 key);
			return -1;
		}
	}
	const char *perm = json_string_value(json_object_get(o, "permission"));
	const char *act = json_string_value(json_object_get(o, "action"));
	json_t *topic = json_object_get(o, "topic");
	if (!perm || !act || !json_is_string(topic)) {
		snprintf(err, errlen, "a rule needs permission, action and topic strings");
		return -1;
	}
	if (strcmp(perm, "allow") == 0)
		x->allow = true;
	else if (strcmp(perm, "deny") == 0)
		x->allow = false;
	else {
		snprintf(err, errlen, "permission must be allow or deny");
		return -1;
	}
	if (strcmp(act, "publish") == 0)
		x->actions = RULES_PUBLISH;
	else if (strcmp(act, "subscribe") == 0)
		x->actions = RULES_SUBSCRIBE;
	else if (strcmp(act, "all") == 0)
		x->actions = RULES_PUBLISH | RULES_SUBSCRIBE;
	else {
		snprintf(err, errlen, "action must be publish, subscribe or all");
		return -1;
	}
	return rules_build_filter(x, json_string_value(topic), json_string_length(topic), who, err,
				  errlen);
}

struct rules *rules_from_json(const void *array, const struct rules_who *who, char *err,
			      size_t errlen)
{
	json_t *a = (json_t *)array;
	if (!json_is_array(a)) {
		snprintf(err, errlen, "the rules are not a JSON array");
		return NULL;
	}
	size_t n = json_array_size(a);
	if (n > RULES_MAX) {
		snprintf(err, errlen, "%zu rules, over the bound of %u", n, RULES_MAX);
		return NULL;
	}
	struct rules *r = calloc(1, sizeof *r + n * sizeof r->r[0]);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		char e[160];
		int rc = rules_one(json_array_get(a, i), &r->r[r->n], who, e, sizeof e);
		if (rc < 0) {
			snprintf(err, errlen, "rule %zu: %s", i + 1, e);
			rules_free(r);
			return NULL;
		}
		r->n += (size_t)rc;
	}
	return r;
}

struct rules *rules_parse(const char *json, size_t len, const struct rules_who *who, char *err,
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
	struct rules *r = rules_from_json(a, who, err, errlen);
	json_decref(a);
	return r;
}
