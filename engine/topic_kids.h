/*
 * topic_kids.h - private to engine/topic.c and engine/retain.c: the part of
 * a trie node both tries share, and its table of literal children.
 *
 * A node's literal children live in an open-addressing table keyed by the
 * hash of their level, so finding one costs the same with 2 siblings or a
 * million. A node with a single child keeps it inline (no table), which is
 * the common case in deep, sparse trees. Each node type embeds struct
 * topic_knode as its first member and stores its level bytes at a fixed
 * offset (passed in as `off`), so one table serves both node types.
 */
#ifndef MIDGE_TOPIC_KIDS_H
#define MIDGE_TOPIC_KIDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct topic_knode;

/* A table slot: the child and its level hash, so a probe compares hashes
 * without touching the child's memory. */
struct topic_kid {
	struct topic_knode *node;
	uint32_t hv;
};

struct topic_knode {
	struct topic_knode *parent;  /* NULL at the root */
	union {
		struct topic_knode *one;  /* kcap == 0: the only child, or NULL */
		struct topic_kid *slot;   /* kcap > 0: power-of-two table */
	} kids;
	uint32_t hv;                 /* hash of this node's level */
	uint32_t one_hv;             /* kcap == 0: hash of kids.one's level */
	uint32_t nkids;
	uint16_t len;                /* level length (a level is at most 65535
				      * bytes); level bytes at node + off */
	uint8_t kbits;               /* kcap = 1 << kbits, or 0 when kbits is 0 */
	uint8_t aux;                 /* free for the node type */
};

/* Slots in p's table; 0 while its child (if any) is kept inline. */
static inline uint32_t topic_kids_cap(const struct topic_knode *p)
{
	return p->kbits ? (uint32_t)1 << p->kbits : 0;
}

/*
 * A seeded hash of one level (32 bits kept: it selects a slot and filters
 * comparisons; equality is always decided by comparing the bytes). Not cryptographic: the seed comes from
 * the owning structure's address, so colliding levels cannot be prepared
 * offline against a fixed function; the table's load factor bounds probes.
 */
static inline uint32_t topic_kids_hash(uint64_t seed, const uint8_t *p, size_t n)
{
	uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
		p += 8;
		n -= 8;
	}
	uint64_t w = 0;
	for (size_t i = 0; i < n; i++)
		w |= (uint64_t)p[i] << (8 * i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (uint32_t)h;
}

static inline int topic_kids_same(const struct topic_knode *c, const uint8_t *key, uint32_t len,
				  size_t off)
{
	return c->len == len && memcmp((const uint8_t *)c + off, key, len) == 0;
}

/* The child of p whose level is key[0..len) (hashing to hv), or NULL. */
static inline struct topic_knode *topic_kids_find(const struct topic_knode *p, uint32_t hv,
						  const uint8_t *key, uint32_t len, size_t off)
{
	if (p->kbits == 0) {
		struct topic_knode *c = p->kids.one;
		return c && p->one_hv == hv && topic_kids_same(c, key, len, off) ? c : NULL;
	}
	uint32_t mask = topic_kids_cap(p) - 1;
	for (uint32_t i = hv & mask;; i = (i + 1) & mask) {
		const struct topic_kid *k = &p->kids.slot[i];
		if (!k->node)
			return NULL;
		if (k->hv == hv && topic_kids_same(k->node, key, len, off))
			return k->node;
	}
}

/* Number of slots to iterate with topic_kids_at (1 when kept inline). */
static inline uint32_t topic_kids_slots(const struct topic_knode *p)
{
	return p->kbits ? topic_kids_cap(p) : 1;
}

/* Slot i's child or NULL, i < topic_kids_slots(p). */
static inline struct topic_knode *topic_kids_at(const struct topic_knode *p, uint32_t i)
{
	return p->kbits ? p->kids.slot[i].node : p->kids.one;
}

/* Adds child c (hv, len and level set; no sibling with the same level) and
 * sets its parent. Returns 0, or -1 on OOM (nothing changed). */
int topic_kids_add(struct topic_knode *p, struct topic_knode *c);

/* Removes child c of p; may shrink the table. Never fails. */
void topic_kids_del(struct topic_knode *p, struct topic_knode *c);

/* The slot holding child c of p (for resuming an iteration after c). */
uint32_t topic_kids_slot_of(const struct topic_knode *p, const struct topic_knode *c);

/* Frees p's table (not the children). */
void topic_kids_release(struct topic_knode *p);

#endif
