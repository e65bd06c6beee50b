/*
 * acl.c - Mosquitto's acl_file: the bounded parser, the compiled tries and
 * the two decisions (a topic, a subscription filter). See acl.h for the
 * semantics.
 *
 * Representation. Every section (the anonymous one, each user's, the
 * patterns without %u, the patterns with %u) is a trie of topic levels in
 * one node array. A node knows its `+`, `%c` and `%u` children and the
 * access bits of the rules that end at it (`here`) and of the rules that
 * end with `#` just below it (`hash`); literal children are found in one
 * hash table keyed by (parent node, level text). Each section also keeps
 * its rules' text for the subscription check, which compares filters
 * with rules one by one (SUBSCRIBE is rare; PUBLISH and delivery walk
 * the tries).
 */
#include "auth/acl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACL_DENY 4u /* access bits: ACL_READ | ACL_WRITE | ACL_DENY */

/* The kind of one level of a rule or filter. */
enum lv_kind { LV_LIT, LV_PLUS, LV_HASH, LV_PAT_C, LV_PAT_U };

struct acl_node {
	uint32_t plus, pat_c, pat_u; /* child node index, 0 = none */
	uint8_t here;                /* rules ending at this node */
	uint8_t hash;                /* rules ending with '#' below this node */
};

/* A literal edge: child of parent reached by label. */
struct acl_edge {
	uint32_t parent, child;
	uint32_t hv;
	uint32_t len;
	char *label;
};

struct acl_rule {
	uint8_t access; /* ACL_READ | ACL_WRITE, or ACL_DENY */
	uint32_t len;
	char *topic;
};

/* One section: its trie's root and its rules in file order. */
struct acl_list {
	uint32_t root; /* 0 = the section has no rule */
	struct acl_rule *rules;
	uint32_t n, cap;
};

struct acl_user {
	char *name;
	size_t len;
	uint32_t hv;
	struct acl_list list;
};

struct acl {
	struct acl_node *nodes; /* [0] is unused: index 0 means none */
	uint32_t n_nodes, cap_nodes;
	struct acl_edge *edges; /* open addressing, at most half full */
	uint32_t edge_cap, n_edges;
	struct acl_user *users; /* open addressing by name */
	uint32_t user_cap, n_users;
	struct acl_list anon;
	struct acl_list pat;   /* patterns without %u */
	struct acl_list pat_u; /* patterns with %u somewhere: skipped for anonymous clients */
	size_t n_rules;
};

/* FNV-1a, seeded: parent index for edges, 0 for user names. */
static uint32_t acl_hash(uint32_t seed, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u ^ seed;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	return h;
}

static void acl_list_clear(struct acl_list *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->rules[i].topic);
	free(l->rules);
	memset(l, 0, sizeof *l);
}

void acl_free(struct acl *a)
{
	if (!a)
		return;
	for (uint32_t i = 0; i < a->edge_cap; i++)
		free(a->edges[i].label);
	free(a->edges);
	for (uint32_t i = 0; i < a->user_cap; i++) {
		free(a->users[i].name);
		acl_list_clear(&a->users[i].list);
	}
	free(a->users);
	acl_list_clear(&a->anon);
	acl_list_clear(&a->pat);
	acl_list_clear(&a->pat_u);
	free(a->nodes);
	free(a);
}

void acl_counts(const struct acl *a, size_t *rules, size_t *users)
{
	*rules = a ? a->n_rules : 0;
	*users = a ? a->n_users : 0;
}

/* A new empty node's index, or 0 (out of memory or over ACL_MAX_NODES). */
static uint32_t acl_node_new(struct acl *a)
{
	if (a->n_nodes >= ACL_MAX_NODES)
		return 0;
	if (a->n_nodes == a->cap_nodes) {
		uint32_t cap = a->cap_nodes ? a->cap_nodes * 2 : 64;
		struct acl_node *n = realloc(a->nodes, cap * sizeof *n);
		if (!n)
			return 0;
		a->nodes = n;
		a->cap_nodes = cap;
	}
	memset(&a->nodes[a->n_nodes], 0, sizeof a->nodes[0]);
	return a->n_nodes++;
}

/* The edge slot for (parent, label): the one holding it or the empty one
 * where it belongs. The table is never full. */
static struct acl_edge *acl_edge_slot(const struct acl *a, uint32_t parent, const char *label,
				      size_t len, uint32_t hv)
{
	uint32_t mask = a->edge_cap - 1;
	for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
		struct acl_edge *e = &a->edges[i];
		if (!e->child)
			return e;
		if (e->hv == hv && e->parent == parent && e->len == len && memcmp(e->label, label, len) == 0)
			return e;
	}
}

static int acl_edges_grow(struct acl *a)
{
	uint32_t cap = a->edge_cap ? a->edge_cap * 2 : 64;
	struct acl_edge *old = a->edges;
	uint32_t old_cap = a->edge_cap;
	struct acl_edge *n = calloc(cap, sizeof *n);
	if (!n)
		return -1;
	a->edges = n;
	a->edge_cap = cap;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].child)
			*acl_edge_slot(a, old[i].parent, old[i].label, old[i].len, old[i].hv) = old[i];
	free(old);
	return 0;
}

/* The literal child of parent named label, created when create is set.
 * Returns 0 when there is none (or on OOM when creating). */
static uint32_t acl_child(struct acl *a, uint32_t parent, const char *label, size_t len,
			  bool create)
{
	uint32_t hv = acl_hash(parent, label, len);
	if (a->edge_cap) {
		struct acl_edge *e = acl_edge_slot(a, parent, label, len, hv);
		if (e->child || !create)
			return e->child;
	} else if (!create) {
		return 0;
	}
	if ((a->n_edges + 1) * 2 > a->edge_cap && acl_edges_grow(a) < 0)
		return 0;
	uint32_t child = acl_node_new(a);
	char *copy = malloc(len ? len : 1);
	if (!child || !copy) {
		free(copy);
		return 0;
	}
	memcpy(copy, label, len);
	struct acl_edge *e = acl_edge_slot(a, parent, label, len, hv);
	*e = (struct acl_edge){parent, child, hv, (uint32_t)len, copy};
	a->n_edges++;
	return child;
}

/* The kind of level p[0..n) of a rule (patterns: whole-level %c / %u). */
static enum lv_kind acl_level_kind(const char *p, size_t n, bool pattern)
{
	if (n == 1 && p[0] == '+')
		return LV_PLUS;
	if (n == 1 && p[0] == '#')
		return LV_HASH;
	if (pattern && n == 2 && p[0] == '%' && p[1] == 'c')
		return LV_PAT_C;
	if (pattern && n == 2 && p[0] == '%' && p[1] == 'u')
		return LV_PAT_U;
	return LV_LIT;
}

/* Adds one checked rule topic[0..len) with access bits to the trie of l.
 * Returns 0 or -1 (out of memory or nodes). */
static int acl_trie_add(struct acl *a, struct acl_list *l, const char *topic, size_t len,
			uint8_t bits, bool pattern)
{
	if (!l->root && !(l->root = acl_node_new(a)))
		return -1;
	uint32_t node = l->root;
	size_t i = 0;
	for (;;) {
		const char *q = memchr(topic + i, '/', len - i);
		size_t end = q ? (size_t)(q - topic) : len;
		enum lv_kind k = acl_level_kind(topic + i, end - i, pattern);
		if (k == LV_HASH) { /* the last level (checked) */
			a->nodes[node].hash |= bits;
			return 0;
		}
		uint32_t next;
		uint32_t *slot = k == LV_PLUS    ? &a->nodes[node].plus
				 : k == LV_PAT_C ? &a->nodes[node].pat_c
				 : k == LV_PAT_U ? &a->nodes[node].pat_u
						 : NULL;
		if (slot) {
			if (!*slot) {
				next = acl_node_new(a); /* may move a->nodes */
				if (!next)
					return -1;
				slot = k == LV_PLUS    ? &a->nodes[node].plus
				       : k == LV_PAT_C ? &a->nodes[node].pat_c
						       : &a->nodes[node].pat_u;
				*slot = next;
			}
			next = *slot;
		} else if (!(next = acl_child(a, node, topic + i, end - i, true))) {
			return -1;
		}
		node = next;
		if (!q)
			break;
		i = end + 1;
	}
	a->nodes[node].here |= bits;
	return 0;
}

static int acl_list_add(struct acl *a, struct acl_list *l, const char *topic, size_t len,
			uint8_t bits, bool pattern)
{
	if (l->n == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 4;
		struct acl_rule *r = realloc(l->rules, cap * sizeof *r);
		if (!r)
			return -1;
		l->rules = r;
		l->cap = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, topic, len);
	copy[len] = '\0';
	l->rules[l->n++] = (struct acl_rule){bits, (uint32_t)len, copy};
	a->n_rules++;
	return acl_trie_add(a, l, topic, len, bits, pattern);
}

/* The user slot for name: the one holding it or the empty one where it
 * belongs. */
static struct acl_user *acl_user_slot(const struct acl *a, const char *name, size_t len,
				      uint32_t hv)
{
	uint32_t mask = a->user_cap - 1;
	for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
		struct acl_user *u = &a->users[i];
		if (!u->name || (u->hv == hv && u->len == len && memcmp(u->name, name, len) == 0))
			return u;
	}
}

static const struct acl_user *acl_user_find(const struct acl *a, const char *name, size_t len)
{
	if (!a->user_cap)
		return NULL;
	const struct acl_user *u = acl_user_slot(a, name, len, acl_hash(0, name, len));
	return u->name ? u : NULL;
}

/* The section of user name (created on its first rule, as Mosquitto
 * does), or NULL on OOM. */
static struct acl_list *acl_user_list(struct acl *a, const char *name, size_t len)
{
	uint32_t hv = acl_hash(0, name, len);
	if ((a->n_users + 1) * 2 > a->user_cap) {
		uint32_t cap = a->user_cap ? a->user_cap * 2 : 16;
		struct acl_user *old = a->users;
		uint32_t old_cap = a->user_cap;
		struct acl_user *n = calloc(cap, sizeof *n);
		if (!n)
			return NULL;
		a->users = n;
		a->user_cap = cap;
		for (uint32_t i = 0; i < old_cap; i++)
			if (old[i].name)
				*acl_user_slot(a, old[i].name, old[i].len, old[i].hv) = old[i];
		free(old);
	}
	struct acl_user *u = acl_user_slot(a, name, len, hv);
	if (!u->name) {
		if (!(u->name = malloc(len + 1)))
			return NULL;
		memcpy(u->name, name, len);
		u->name[len] = '\0';
		u->len = len;
		u->hv = hv;
		a->n_users++;
	}
	return &u->list;
}

/* ---- the parser ---- */

struct acl_parse_state {
	struct acl *a;
	const char *name;
	int lineno;
	char *user; /* the open `user` section, NULL: anonymous */
	size_t user_len;
	acl_warn_cb warn;
	void *warn_user;
	char *err;
	size_t errlen;
};

static int acl_fail(struct acl_parse_state *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int acl_fail(struct acl_parse_state *ps, const char *fmt, ...)
{
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->name, ps->lineno, what);
	return -1;
}

/* C's isspace() in the "C" locale, without its sign trap. */
static bool acl_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Mosquitto's check of an ACL topic (mosquitto_sub_topic_check): `+` and
 * `#` only as whole levels, `#` last, at most 65535 bytes and 200 `/`. */
static bool acl_topic_valid(const char *t, size_t n)
{
	unsigned slashes = 0;
	if (n > 65535)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool level_start = i == 0 || t[i - 1] == '/';
		if (t[i] == '+' && (!level_start || (i + 1 < n && t[i + 1] != '/')))
			return false;
		if (t[i] == '#' && (!level_start || i + 1 < n))
			return false;
		if (t[i] == '/' && ++slashes > ACL_MAX_LEVELS - 1)
			return false;
	}
	return true;
}

static bool acl_has(const char *s, size_t n, const char *needle)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == needle[0] && s[i + 1] == needle[1])
			return true;
	return false;
}

/* A `topic` or `pattern` line; rest is what follows the keyword's space
 * (strtok_r semantics: the access word, one space, the topic). */
static int acl_parse_rule(struct acl_parse_state *ps, bool pattern, char *rest)
{
	while (*rest == ' ')
		rest++;
	if (!*rest)
		return acl_fail(ps, "empty topic");
	char *access_s = rest;
	char *sp = strchr(rest, ' ');
	char *topic = NULL;
	if (sp) {
		*sp = '\0';
		topic = sp + 1;
		if (!*topic)
			topic = NULL;
	}
	uint8_t bits = ACL_READ | ACL_WRITE;
	if (!topic) {
		topic = access_s; /* `topic TOPIC`: read and write */
	} else {
		while (acl_isspace(*topic))
			topic++;
		if (strcmp(access_s, "read") == 0)
			bits = ACL_READ;
		else if (strcmp(access_s, "write") == 0)
			bits = ACL_WRITE;
		else if (strcmp(access_s, "readwrite") == 0)
			bits = ACL_READ | ACL_WRITE;
		else if (strcmp(access_s, "deny") == 0)
			bits = ACL_DENY;
		else
			return acl_fail(ps, "invalid topic access type '%.40s' (read, write, readwrite or "
					    "deny)", access_s);
	}
	size_t len = strlen(topic);
	if (!acl_topic_valid(topic, len))
		return acl_fail(ps, "invalid ACL topic '%.80s%s'", topic, len > 80 ? "..." : "");
	struct acl_list *l;
	if (pattern) {
		bool c = acl_has(topic, len, "%c"), u = acl_has(topic, len, "%u");
		if (!c && !u && ps->warn) {
			char w[200];
			snprintf(w, sizeof w, "%s:%d: ACL pattern '%.80s' does not contain %%c or %%u",
				 ps->name, ps->lineno, topic);
			ps->warn(ps->warn_user, w);
		}
		l = u ? &ps->a->pat_u : &ps->a->pat;
	} else if (ps->user) {
		l = acl_user_list(ps->a, ps->user, ps->user_len);
	} else {
		l = &ps->a->anon;
	}
	if (!l || acl_list_add(ps->a, l, topic, len, bits, pattern) < 0)
		return acl_fail(ps, ps->a->n_nodes >= ACL_MAX_NODES
					    ? "too many rules (at most %u topic levels in all)"
					    : "out of memory (%u)",
				ACL_MAX_NODES);
	return 0;
}

/* One line, line[0..n) with no newline (and a NUL at line[n]). */
static int acl_parse_line(struct acl_parse_state *ps, char *line, size_t n)
{
	/* fgets() and strlen(): a NUL ends the line's text */
	n = strlen(line);
	while (n > 0 && acl_isspace(line[n - 1]))
		line[--n] = '\0';
	if (line[0] == '#')
		return 0;
	char *p = line;
	while (*p == ' ')
		p++;
	if (!*p)
		return 0;
	char *tok = p;
	char *rest = strchr(p, ' ');
	if (rest)
		*rest++ = '\0';
	else
		rest = p + strlen(p);
	if (strcmp(tok, "topic") == 0 || strcmp(tok, "pattern") == 0)
		return acl_parse_rule(ps, tok[0] == 'p', rest);
	if (strcmp(tok, "user") == 0) {
		while (acl_isspace(*rest))
			rest++;
		if (!*rest)
			return acl_fail(ps, "missing username");
		size_t len = strlen(rest);
		char *u = malloc(len + 1);
		if (!u)
			return acl_fail(ps, "out of memory");
		memcpy(u, rest, len + 1);
		free(ps->user);
		ps->user = u;
		ps->user_len = len;
		return 0;
	}
	return acl_fail(ps, "invalid line (expected topic, pattern, user or a # comment): '%.60s'",
			tok);
}

struct acl *acl_parse(const char *text, size_t len, const char *name, acl_warn_cb warn,
		      void *warn_user, char *err, size_t errlen)
{
	struct acl_parse_state ps = {.name = name ? name : "acl_file", .warn = warn,
				     .warn_user = warn_user, .err = err, .errlen = errlen};
	char *line = NULL;
	int rc = -1;
	if (len > ACL_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %u bytes", ps.name, ACL_MAX_FILE);
		return NULL;
	}
	ps.a = calloc(1, sizeof *ps.a);
	line = malloc(ACL_MAX_LINE + 1);
	if (ps.a && line)
		(void)acl_node_new(ps.a); /* node 0 stands for "none" */
	if (!ps.a || !line || ps.a->n_nodes != 1) {
		snprintf(err, errlen, "%s: out of memory", ps.name);
		goto out;
	}
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		ps.lineno++;
		if (end - i > ACL_MAX_LINE) {
			acl_fail(&ps, "line longer than %u bytes", ACL_MAX_LINE);
			goto out;
		}
		memcpy(line, text + i, end - i);
		line[end - i] = '\0';
		if (acl_parse_line(&ps, line, end - i) < 0)
			goto out;
		i = nl ? end + 1 : len;
	}
	rc = 0;
out:
	free(line);
	free(ps.user);
	if (rc < 0) {
		acl_free(ps.a);
		return NULL;
	}
	return ps.a;
}

struct acl *acl_load(const char *path, acl_warn_cb warn, void *warn_user, char *err,
		     size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	struct acl *a = NULL;
	if (!f) {
		snprintf(err, errlen, "acl_file %s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(ACL_MAX_FILE + 1);
	if (!buf) {
		snprintf(err, errlen, "acl_file %s: out of memory", path);
		goto out;
	}
	size_t n = fread(buf, 1, ACL_MAX_FILE + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "acl_file %s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	a = acl_parse(buf, n, path, warn, warn_user, err, errlen);
out:
	free(buf);
	fclose(f);
	return a;
}

/* ---- matching a topic ---- */

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
