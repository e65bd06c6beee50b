/*
 * acl_trie.c - the compiled acl_file (see acl_trie.h): the node array,
 * the hash table of literal edges, the user sections by name, and their
 * release.
 */
#include "auth/acl_trie.h"

#include <stdlib.h>
#include <string.h>

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

uint32_t acl_node_new(struct acl *a)
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

uint32_t acl_child(struct acl *a, uint32_t parent, const char *label, size_t len, bool create)
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

enum lv_kind acl_level_kind(const char *p, size_t n, bool pattern)
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

int acl_list_add(struct acl *a, struct acl_list *l, const char *topic, size_t len, uint8_t bits,
		 bool pattern)
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

const struct acl_user *acl_user_find(const struct acl *a, const char *name, size_t len)
{
	if (!a->user_cap)
		return NULL;
	const struct acl_user *u = acl_user_slot(a, name, len, acl_hash(0, name, len));
	return u->name ? u : NULL;
}

struct acl_list *acl_user_list(struct acl *a, const char *name, size_t len)
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
