/*
 * acl.c - Mosquitto's acl_file: the two decisions (a topic, a
 * subscription filter) for one client, over the tries acl_parse.c
 * compiled (acl_trie.h), with %c and %u taking the client's id and user
 * name. See acl.h for the semantics.
 */
#include "auth/acl.h"

#include <string.h>

#include "auth/acl_trie.h"

struct acl_walk {
	const struct acl *a;
	const struct acl_who *who;
	const uint8_t *t;
	size_t len;
	uint8_t bits;
};

static bool acl_level_is(const uint8_t *lv, size_t n, const char *s, size_t slen)
{
	return slen > 0 && n == slen && memcmp(lv, s, n) == 0;
}

/*
 * Collects into w->bits the access of every rule under node that matches
 * the topic's levels from pos on (pos > len: all levels consumed). Each
 * node is visited at most once per topic (a node has one depth), so the
 * cost is bounded by the trie, and the depth by ACL_MAX_LEVELS.
 */
static void acl_walk(struct acl_walk *w, uint32_t node, size_t pos)
{
	const struct acl_node *n = &w->a->nodes[node];
	if (pos > w->len) { /* "a/#" matches "a" too */
		w->bits |= n->here | n->hash;
		return;
	}
	/* [MQTT-4.7.2-1]: no wildcard at the first level matches a $ topic */
	bool dollar = pos == 0 && w->len > 0 && w->t[0] == '$';
	const uint8_t *lv = w->t + pos;
	const uint8_t *slash = memchr(lv, '/', w->len - pos);
	size_t n_lv = slash ? (size_t)(slash - lv) : w->len - pos;
	size_t next = slash ? pos + n_lv + 1 : w->len + 1;
	if (!dollar) {
		w->bits |= n->hash;
		if (n->plus)
			acl_walk(w, n->plus, next);
		if (n->pat_c && acl_level_is(lv, n_lv, w->who->cid, w->who->cid_len))
			acl_walk(w, n->pat_c, next);
		if (n->pat_u && w->who->has_user &&
		    acl_level_is(lv, n_lv, w->who->user, w->who->user_len))
			acl_walk(w, n->pat_u, next);
	}
	uint32_t child = acl_child((struct acl *)w->a, node, (const char *)lv, n_lv, false);
	if (child)
		acl_walk(w, child, next);
}

/* What the section's rules say: -1 deny, 1 allow, 0 nothing said. */
static int acl_list_decide(struct acl_walk *w, const struct acl_list *l, enum acl_access access)
{
	if (!l->root)
		return 0;
	w->bits = 0;
	acl_walk(w, l->root, 0);
	if (w->bits & ACL_DENY)
		return -1;
	return (w->bits & access) ? 1 : 0;
}

static bool acl_dangerous(const char *s, size_t n)
{
	return memchr(s, '+', n) || memchr(s, '#', n);
}

static bool acl_has_patterns(const struct acl *a)
{
	return a->pat.root || a->pat_u.root;
}

/* The section of who: its user's, the anonymous one, or NULL. */
static const struct acl_list *acl_section(const struct acl *a, const struct acl_who *who)
{
	if (!who->has_user)
		return a->anon.root ? &a->anon : NULL;
	const struct acl_user *u = acl_user_find(a, who->user, who->user_len);
	return u && u->list.root ? &u->list : NULL;
}

bool acl_check(const struct acl *a, const struct acl_who *who, const uint8_t *topic, size_t len,
	       enum acl_access access)
{
	if (!a)
		return true;
	const struct acl_list *own = acl_section(a, who);
	if (!own && !acl_has_patterns(a))
		return false;
	struct acl_walk w = {a, who, topic, len, 0};
	int r = own ? acl_list_decide(&w, own, access) : 0;
	if (r)
		return r > 0;
	if (!acl_has_patterns(a))
		return false;
	/* A user name or client id with a wildcard would widen its patterns */
	if ((who->has_user && acl_dangerous(who->user, who->user_len)) ||
	    acl_dangerous(who->cid, who->cid_len))
		return false;
	w.bits = 0;
	if (a->pat.root)
		acl_walk(&w, a->pat.root, 0);
	if (who->has_user && a->pat_u.root)
		acl_walk(&w, a->pat_u.root, 0);
	if (w.bits & ACL_DENY)
		return false;
	return (w.bits & access) != 0;
}

/* ---- comparing a filter with rules (SUBSCRIBE) ---- */

/* A cursor over the levels of a filter or rule s[0..n). */
struct acl_levels {
	const char *s;
	size_t n, pos;
	bool done;
	bool pattern;
};

struct acl_level {
	enum lv_kind kind;
	const char *p;
	size_t n;
	bool end; /* no level left */
};

static struct acl_level acl_next(struct acl_levels *it)
{
	struct acl_level l = {LV_LIT, NULL, 0, false};
	if (it->done) {
		l.end = true;
		return l;
	}
	const char *q = memchr(it->s + it->pos, '/', it->n - it->pos);
	size_t end = q ? (size_t)(q - it->s) : it->n;
	l.p = it->s + it->pos;
	l.n = end - it->pos;
	l.kind = acl_level_kind(l.p, l.n, it->pattern);
	if (q)
		it->pos = end + 1;
	else
		it->done = true;
	return l;
}

/* A pattern level resolved for who: a literal, or false when it can
 * match no level (no or empty value). */
static bool acl_resolve(struct acl_level *l, const struct acl_who *who)
{
	if (l->kind == LV_PAT_C) {
		l->p = who->cid;
		l->n = who->cid_len;
	} else if (l->kind == LV_PAT_U) {
		if (!who->has_user)
			return false;
		l->p = who->user;
		l->n = who->user_len;
	} else {
		return true;
	}
	l->kind = LV_LIT;
	/* a value with '/' spans levels: it never equals one */
	return l->n > 0 && !memchr(l->p, '/', l->n);
}

static bool acl_lit_dollar(const struct acl_level *l)
{
	return l->kind == LV_LIT && l->n > 0 && l->p[0] == '$';
}

/* Is there a topic that both filter f and rule r match? */
static bool acl_intersects(const char *f, size_t fn, const struct acl_rule *r, bool pattern,
			   const struct acl_who *who)
{
	struct acl_levels fi = {f, fn, 0, false, false}, ri = {r->topic, r->len, 0, false, pattern};
	for (int i = 0;; i++) {
		struct acl_level fl = acl_next(&fi), rl = acl_next(&ri);
		bool rpat = rl.kind == LV_PAT_C || rl.kind == LV_PAT_U;
		if (!rl.end && !acl_resolve(&rl, who))
			return false;
		/* at the first level a wildcard or a pattern never meets a $ topic */
		if (i == 0 && ((acl_lit_dollar(&fl) && (rl.kind != LV_LIT || rpat)) ||
			       (acl_lit_dollar(&rl) && (fl.kind != LV_LIT || rpat))))
			return false;
		if (fl.end && rl.end)
			return true;
		if ((!rl.end && rl.kind == LV_HASH) || (!fl.end && fl.kind == LV_HASH))
			return true;
		if (fl.end || rl.end)
			return false;
		if (fl.kind == LV_LIT && rl.kind == LV_LIT &&
		    (fl.n != rl.n || memcmp(fl.p, rl.p, fl.n) != 0))
			return false;
	}
}

/* Does rule d match every topic filter f matches? */
static bool acl_covers(const char *f, size_t fn, const struct acl_rule *d, bool pattern,
		       const struct acl_who *who)
{
	struct acl_levels fi = {f, fn, 0, false, false}, di = {d->topic, d->len, 0, false, pattern};
	for (int i = 0;; i++) {
		struct acl_level fl = acl_next(&fi), dl = acl_next(&di);
		bool dpat = dl.kind == LV_PAT_C || dl.kind == LV_PAT_U;
		if (!dl.end && !acl_resolve(&dl, who))
			return false;
		if (i == 0 && acl_lit_dollar(&fl) && (dl.kind != LV_LIT || dpat))
			return false;
		if (!dl.end && dl.kind == LV_HASH)
			return true;
		if (fl.end)
			return dl.end;
		if (dl.end || fl.kind == LV_HASH)
			return false;
		if (fl.kind == LV_PLUS && dl.kind != LV_PLUS)
			return false;
		if (fl.kind == LV_LIT && dl.kind == LV_LIT &&
		    (fl.n != dl.n || memcmp(fl.p, dl.p, fl.n) != 0))
			return false;
	}
}

/* -1: a deny of l covers the filter; 1: a read rule of l meets it; 0. */
static int acl_list_filter(const struct acl_list *l, const char *f, size_t n, bool pattern,
			   const struct acl_who *who)
{
	bool meets = false;
	for (uint32_t i = 0; i < l->n; i++) {
		const struct acl_rule *r = &l->rules[i];
		if (r->access & ACL_DENY) {
			if (acl_covers(f, n, r, pattern, who))
				return -1;
		} else if ((r->access & ACL_READ) && !meets) {
			meets = acl_intersects(f, n, r, pattern, who);
		}
	}
	return meets ? 1 : 0;
}

bool acl_filter_readable(const struct acl *a, const struct acl_who *who, const uint8_t *filter,
			 size_t len)
{
	const char *f = (const char *)filter;
	if (!a)
		return true;
	if (len > 7 && memcmp(f, "$share/", 7) == 0) {
		const char *slash = memchr(f + 7, '/', len - 7);
		if (!slash)
			return false;
		len -= (size_t)(slash + 1 - f);
		f = slash + 1;
	}
	const struct acl_list *own = acl_section(a, who);
	if (!own && !acl_has_patterns(a))
		return false;
	int r = own ? acl_list_filter(own, f, len, false, who) : 0;
	if (r)
		return r > 0;
	if (!acl_has_patterns(a) || (who->has_user && acl_dangerous(who->user, who->user_len)) ||
	    acl_dangerous(who->cid, who->cid_len))
		return false;
	int p = acl_list_filter(&a->pat, f, len, true, who);
	int pu = who->has_user ? acl_list_filter(&a->pat_u, f, len, true, who) : 0;
	if (p < 0 || pu < 0)
		return false;
	return p > 0 || pu > 0;
}
