/*
 * topic_subs.c - the plain subscriptions of one trie node: one inline, more
 * in a set with a subscriber index once there are many (see
 * engine/topic_node.h). Shared groups and matching stay in topic.c.
 */
#include "engine/topic.h"

#include <stdlib.h>
#include <string.h>

#include "engine/topic_node.h"

static uint32_t ptr_hash(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

/* Builds set's subscriber index with cap slots; -1 on OOM (no index then,
 * which only costs lookup speed). */
static int subidx_build(struct topic_subset *set, uint32_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));
	if (!idx)
		return -1;
	uint32_t mask = cap - 1;
	for (uint32_t p = 0; p < set->n; p++) {
		uint32_t i = ptr_hash(set->v[p].subscriber) & mask;
		while (idx[i])
			i = (i + 1) & mask;
		idx[i] = p + 1;
	}
	free(set->idx);
	set->idx = idx;
	set->idxcap = cap;
	return 0;
}

static void subidx_drop(struct topic_subset *set)
{
	free(set->idx);
	set->idx = NULL;
	set->idxcap = 0;
}

/* The index slot holding subscriber, or TOPIC_NONE. */
static uint32_t subidx_slot(const struct topic_subset *set, const void *subscriber)
{
	uint32_t mask = set->idxcap - 1;
	for (uint32_t i = ptr_hash(subscriber) & mask;; i = (i + 1) & mask) {
		uint32_t v = set->idx[i];
		if (!v)
			return TOPIC_NONE;
		if (set->v[v - 1].subscriber == subscriber)
			return i;
	}
}

/* Removes the index slot hole (backward shift, as in topic_kids.c). */
static void subidx_del(struct topic_subset *set, uint32_t hole)
{
	uint32_t mask = set->idxcap - 1;
	set->idx[hole] = 0;
	for (uint32_t j = (hole + 1) & mask; set->idx[j]; j = (j + 1) & mask) {
		uint32_t home = ptr_hash(set->v[set->idx[j] - 1].subscriber) & mask;
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			set->idx[hole] = set->idx[j];
			set->idx[j] = 0;
			hole = j;
		}
	}
}

/* subscriber's plain subscription at n, or NULL. */
struct topic_sub *topic_subs_find(struct topic_node *n, const void *subscriber)
{
	if (n->k.aux == TOPIC_SUBS_ONE)
		return n->s.one.subscriber == subscriber ? &n->s.one : NULL;
	if (n->k.aux != TOPIC_SUBS_SET)
		return NULL;
	struct topic_subset *set = n->s.set;
	if (set->idx) {
		uint32_t i = subidx_slot(set, subscriber);
		return i == TOPIC_NONE ? NULL : &set->v[set->idx[i] - 1];
	}
	for (uint32_t p = 0; p < set->n; p++)
		if (set->v[p].subscriber == subscriber)
			return &set->v[p];
	return NULL;
}

/* Gives n a subset with room for cap plain subscriptions (moving the
 * inline one into it). NULL on OOM, n unchanged. */
struct topic_subset *topic_set_ensure(struct topic_node *n, uint32_t cap)
{
	if (n->k.aux == TOPIC_SUBS_SET) {
		struct topic_subset *set = n->s.set;
		if (set->cap >= cap)
			return set;
		set = realloc(set, sizeof(*set) + cap * sizeof(set->v[0]));
		if (!set)
			return NULL;
		set->cap = cap;
		n->s.set = set;
		return set;
	}
	if (cap < 2)
		cap = 2;
	struct topic_subset *set = calloc(1, sizeof(*set) + cap * sizeof(set->v[0]));
	if (!set)
		return NULL;
	set->cap = cap;
	if (n->k.aux == TOPIC_SUBS_ONE)
		set->v[set->n++] = n->s.one;
	n->s.set = set;
	n->k.aux = TOPIC_SUBS_SET;
	return set;
}

/* Back to the inline form when a subset holds at most one plain
 * subscription and no group; shrinks a mostly empty subset. */
void topic_set_settle(struct topic_node *n)
{
	struct topic_subset *set = n->s.set;
	if (set->groups == NULL && set->n <= 1) {
		if (set->n == 1) {
			n->s.one = set->v[0];
			n->k.aux = TOPIC_SUBS_ONE;
		} else {
			n->k.aux = TOPIC_SUBS_NONE;
			memset(&n->s, 0, sizeof(n->s));
		}
		topic_set_free(set);
		return;
	}
	if (set->idx && set->n < TOPIC_IDX_MIN / 2)
		subidx_drop(set);
	else if (set->idx && set->n * 8 < set->idxcap && set->idxcap > TOPIC_IDX_MIN * 4)
		(void)subidx_build(set, set->idxcap / 2);
	if (set->cap > 4 && set->n * 4 <= set->cap) {
		/* Shrinking is an optimisation: on OOM the larger block stays. */
		struct topic_subset *s2 =
			realloc(set, sizeof(*set) + (set->cap / 2) * sizeof(set->v[0]));
		if (s2) {
			s2->cap /= 2;
			n->s.set = s2;
		}
	}
}

int topic_subs_add(struct topic_node *n, const struct topic_sub *s)
{
	if (n->k.aux == TOPIC_SUBS_NONE) {
		n->s.one = *s;
		n->k.aux = TOPIC_SUBS_ONE;
		return 0;
	}
	uint32_t cnt = n->k.aux == TOPIC_SUBS_SET ? n->s.set->n : 1;
	uint32_t cap = n->k.aux == TOPIC_SUBS_SET ? n->s.set->cap : 0;
	struct topic_subset *set = topic_set_ensure(n, cnt < cap ? cap : (cap ? cap * 2 : 2));
	if (!set)
		return -1;
	cnt = set->n;
	set->v[cnt] = *s;
	set->n = cnt + 1;
	if (set->idx && (cnt + 1) * 2 > set->idxcap) {
		if (subidx_build(set, set->idxcap * 2) < 0)
			subidx_drop(set);
	} else if (set->idx) {
		uint32_t mask = set->idxcap - 1;
		uint32_t i = ptr_hash(s->subscriber) & mask;
		while (set->idx[i])
			i = (i + 1) & mask;
		set->idx[i] = cnt + 1;
	} else if (cnt + 1 >= TOPIC_IDX_MIN) {
		(void)subidx_build(set, TOPIC_IDX_MIN * 4);
	}
	return 0;
}

/* Removes subscription sub (found by subs_find) from n; in a subset the
 * last one moves into its place. */
void topic_subs_del(struct topic_node *n, struct topic_sub *sub)
{
	if (n->k.aux == TOPIC_SUBS_ONE) {
		n->k.aux = TOPIC_SUBS_NONE;
		memset(&n->s, 0, sizeof(n->s));
		return;
	}
	struct topic_subset *set = n->s.set;
	uint32_t p = (uint32_t)(sub - set->v);
	uint32_t last = set->n - 1;
	if (set->idx) {
		subidx_del(set, subidx_slot(set, set->v[p].subscriber));
		if (p != last)
			set->idx[subidx_slot(set, set->v[last].subscriber)] = p + 1;
	}
	set->v[p] = set->v[last];
	set->n = last;
	topic_set_settle(n);
}
