/*
 * retain.c - the retained-message store (see engine/topic.h and
 * docs/routing.md).
 *
 * A trie keyed by topic level, one node per level, holding at most one
 * message per topic. Matching walks the subscriber's filter: a literal level
 * is one hash lookup, '+' visits the children of one node, '#' the subtree
 * of one node, so subtrees the filter cannot match are never visited. Like
 * the subscription trie, the walk uses parent pointers instead of recursion
 * or a stack, so neither a deep filter nor a deep store can exhaust the C
 * stack, and it allocates nothing. Callbacks must not modify the store.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/topic.h"
#include "engine/topic_debug.h"
#include "engine/topic_kids.h"

struct retain_node {
	struct topic_knode k;
	void *msg;
	uint8_t level[];
};

struct retain_store {
	struct retain_node *root;
	void (*unref)(void *msg);
	size_t (*size)(const void *msg);
	uint64_t seed;
	size_t count;
	uint64_t bytes; /* size() of every message held */
	size_t nodes;
};

#define RETAIN_OFF offsetof(struct retain_node, level)

static struct retain_node *rnode_of(struct topic_knode *k)
{
	return (struct retain_node *)k;
}

struct retain_store *retain_store_new(void (*unref)(void *msg))
{
	struct retain_store *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->root = calloc(1, sizeof(*r->root));
	if (!r->root) {
		free(r);
		return NULL;
	}
	r->unref = unref;
	/* Seeded from the structure's address, as in topic.c. */
	uint64_t a = (uint64_t)(uintptr_t)r ^ ((uint64_t)(uintptr_t)r->root << 17);
	r->seed = topic_kids_hash(0x72657461696eULL, (const uint8_t *)&a, sizeof(a));
	r->seed = (r->seed << 32) ^ topic_kids_hash(r->seed, (const uint8_t *)&a, sizeof(a));
	return r;
}

/* Frees every node, handing each message to unref; the parent field of
 * nodes waiting to be freed links them into a work list. */
void retain_store_free(struct retain_store *r)
{
	if (!r)
		return;
	struct retain_node *work = r->root;
	work->k.parent = NULL;
	while (work) {
		struct retain_node *n = work;
		work = rnode_of(n->k.parent);
		for (uint32_t i = 0; n->k.nkids && i < topic_kids_slots(&n->k); i++) {
			struct topic_knode *c = topic_kids_at(&n->k, i);
			if (c) {
				c->parent = (struct topic_knode *)work;
				work = rnode_of(c);
			}
		}
		topic_kids_release(&n->k);
		if (n->msg && r->unref)
			r->unref(n->msg); /* ownership: the store's reference ends */
		free(n);
	}
	free(r);
}

/* Removes message-less leaves from n up to (not including) the root. */
static void rnode_prune(struct retain_store *r, struct retain_node *n)
{
	while (n != r->root && !n->msg && n->k.nkids == 0) {
		struct retain_node *p = rnode_of(n->k.parent);
		topic_kids_del(&p->k, &n->k);
		free(n);
		r->nodes--;
		n = p;
	}
}

/* The node of topic[0..len); created along the way when create is set.
 * NULL: absent, or OOM with create (what was created is pruned again). */
static struct retain_node *rnode_walk(struct retain_store *r, const uint8_t *topic, size_t len,
				      bool create)
{
	struct retain_node *n = r->root;
	size_t s = 0;
	for (;;) {
		const uint8_t *slash = memchr(topic + s, '/', len - s);
		size_t e = slash ? (size_t)(slash - topic) : len;
		uint32_t l = (uint32_t)(e - s);
		uint32_t hv = topic_kids_hash(r->seed, topic + s, l);
		struct topic_knode *c = topic_kids_find(&n->k, hv, topic + s, l, RETAIN_OFF);
		if (!c && create) {
			/* A level longer than any MQTT topic is refused like OOM. */
			struct retain_node *nn = l > UINT16_MAX ? NULL : calloc(1, sizeof(*nn) + l);
			if (nn) {
				nn->k.hv = hv;
				nn->k.len = (uint16_t)l;
				memcpy(nn->level, topic + s, l);
				if (topic_kids_add(&n->k, &nn->k) == 0) {
					r->nodes++;
					c = &nn->k;
				} else {
					free(nn);
				}
			}
			if (!c) {
				rnode_prune(r, n);
				return NULL;
			}
		}
		if (!c)
			return NULL;
		n = rnode_of(c);
		if (e == len)
			return n;
		s = e + 1;
	}
}

/*
 * Set: the store takes the caller's reference to msg and gives up the one
 * it held for the topic (unref). Clear (msg NULL): gives it up and prunes.
 * On OOM (-1) nothing changed: msg was not taken, the caller still owns it.
 */
int retain_store_set(struct retain_store *r, const uint8_t *topic, size_t len, void *msg)
{
	struct retain_node *n = rnode_walk(r, topic, len, msg != NULL);
	if (!n)
		return msg ? -1 : 0;
	void *old = n->msg;
	n->msg = msg; /* ownership: the store holds msg's reference now */
	if (r->size)
		r->bytes = r->bytes + (msg ? r->size(msg) : 0) - (old ? r->size(old) : 0);
	if (old && r->unref)
		r->unref(old);
	if (!msg) {
		if (old)
			r->count--;
		rnode_prune(r, n);
	} else if (!old) {
		r->count++;
	}
	return old ? 1 : 0;
}

static bool rnode_dollar(const struct retain_node *n)
{
	return n->k.len > 0 && n->level[0] == '$';
}

/* Calls cb for n's message and every message below n; below the root,
 * '$' topics are left out [MQTT-4.7.2-1]. Depth-first via parent
 * pointers and slot positions. */
static void rnode_emit_subtree(struct retain_store *r, struct retain_node *top, retain_match_cb cb,
			       void *ctx)
{
	struct retain_node *n = top;
	uint32_t i = 0;
	if (n->msg)
		cb(ctx, n->msg);
	for (;;) {
		struct retain_node *c = NULL;
		for (; n->k.nkids && i < topic_kids_slots(&n->k); i++) {
			c = rnode_of(topic_kids_at(&n->k, i));
			if (c && !(n == r->root && rnode_dollar(c))) /* [MQTT-4.7.2-1] */
				break;
			c = NULL;
		}
		if (c) {
			n = c;
			i = 0;
			if (n->msg)
				cb(ctx, n->msg);
			continue;
		}
		if (n == top)
			return;
		struct retain_node *p = rnode_of(n->k.parent);
		i = topic_kids_slot_of(&p->k, &n->k) + 1;
		n = p;
	}
}

/*
 * Depth-first over the store guided by the filter. State: node n and s, the
 * offset of the filter level after n's (s > len once the filter is used
 * up). A literal level descends to one child; '+' to each child in turn
 * (resumed after going back up by the child's slot); '#' emits n's subtree.
 * A leading wildcard skips '$' topics [MQTT-4.7.2-1].
 */
void retain_store_match(struct retain_store *r, const uint8_t *filter, size_t len,
			retain_match_cb cb, void *ctx)
{
	struct retain_node *root = r->root;
	struct retain_node *n = root;
	size_t s = 0, e = 0;
	uint32_t it = 0;

enter:
	if (s > len) {
		if (n->msg)
			cb(ctx, n->msg);
		goto up;
	}
	{
		const uint8_t *slash = memchr(filter + s, '/', len - s);
		e = slash ? (size_t)(slash - filter) : len;
		if (e - s == 1 && filter[s] == '#') {
			rnode_emit_subtree(r, n, cb, ctx);
			goto up;
		}
		if (e - s == 1 && filter[s] == '+') {
			it = 0;
			goto scan;
		}
		uint32_t l = (uint32_t)(e - s);
		uint32_t hv = topic_kids_hash(r->seed, filter + s, l);
		struct topic_knode *c = topic_kids_find(&n->k, hv, filter + s, l, RETAIN_OFF);
		if (c) {
			n = rnode_of(c);
			s = e + 1;
			goto enter;
		}
		goto up;
	}
scan:
	for (; n->k.nkids && it < topic_kids_slots(&n->k); it++) {
		struct retain_node *c = rnode_of(topic_kids_at(&n->k, it));
		if (c && !(n == root && rnode_dollar(c))) { /* [MQTT-4.7.2-1] */
			n = c;
			s = e + 1;
			goto enter;
		}
	}
up:
	while (n != root) {
		struct retain_node *p = rnode_of(n->k.parent);
		e = s - 1;
		s = e;
		while (s > 0 && filter[s - 1] != '/')
			s--;
		if (e - s == 1 && filter[s] == '+') {
			it = topic_kids_slot_of(&p->k, &n->k) + 1;
			n = p;
			goto scan;
		}
		n = p;
	}
}

size_t retain_store_count(const struct retain_store *r)
{
	return r->count;
}

void retain_store_set_size(struct retain_store *r, size_t (*size)(const void *msg))
{
	r->size = size;
}

uint64_t retain_store_bytes(const struct retain_store *r)
{
	return r->bytes;
}

void *retain_store_get(struct retain_store *r, const uint8_t *topic, size_t len)
{
	struct retain_node *n = rnode_walk(r, topic, len, false);
	return n ? n->msg : NULL;
}

size_t retain_store_node_count(const struct retain_store *r)
{
	return r->nodes;
}
