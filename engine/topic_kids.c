/*
 * topic_kids.c - the literal-children table shared by the subscription trie
 * and the retained store: linear probing, load at most 3/4, backward-shift
 * deletion (no tombstones, so churn never degrades lookups), shrinking when
 * mostly empty, and a single child kept inline without a table.
 */
#include "engine/topic_kids.h"

#include <stdlib.h>

enum { TOPIC_KIDS_MIN_CAP = 4 };

static void kids_put(struct topic_kid *slot, uint32_t cap, struct topic_knode *c)
{
	uint32_t mask = cap - 1;
	uint32_t i = c->hv & mask;
	while (slot[i].node)
		i = (i + 1) & mask;
	slot[i].node = c;
	slot[i].hv = c->hv;
}

/* Moves p's children into a fresh table of cap slots. -1 on OOM, p unchanged. */
static int kids_rehash(struct topic_knode *p, uint32_t cap)
{
	struct topic_kid *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	for (uint32_t i = 0; i < topic_kids_slots(p); i++) {
		struct topic_knode *c = topic_kids_at(p, i);
		if (c)
			kids_put(slot, cap, c);
	}
	if (p->kbits)
		free(p->kids.slot);
	p->kids.slot = slot;
	p->kbits = 0;
	while (((uint32_t)1 << p->kbits) < cap)
		p->kbits++;
	return 0;
}

int topic_kids_add(struct topic_knode *p, struct topic_knode *c)
{
	uint32_t kcap = topic_kids_cap(p);
	if (kcap == 0 && p->nkids == 0) {
		p->kids.one = c;
		p->one_hv = c->hv;
	} else {
		if (kcap == 0 || (p->nkids + 1) * 4 > kcap * 3) {
			uint32_t cap = kcap ? kcap * 2 : TOPIC_KIDS_MIN_CAP;
			if (cap == 0 || kids_rehash(p, cap) < 0)
				return -1;
		}
		kids_put(p->kids.slot, topic_kids_cap(p), c);
	}
	p->nkids++;
	c->parent = p;
	return 0;
}

uint32_t topic_kids_slot_of(const struct topic_knode *p, const struct topic_knode *c)
{
	if (p->kbits == 0)
		return 0;
	uint32_t mask = topic_kids_cap(p) - 1;
	uint32_t i = c->hv & mask;
	while (p->kids.slot[i].node != c)
		i = (i + 1) & mask;
	return i;
}

void topic_kids_del(struct topic_knode *p, struct topic_knode *c)
{
	c->parent = NULL;
	p->nkids--;
	uint32_t kcap = topic_kids_cap(p);
	if (kcap == 0) {
		p->kids.one = NULL;
		return;
	}
	uint32_t mask = kcap - 1;
	struct topic_kid *slot = p->kids.slot;
	uint32_t hole = topic_kids_slot_of(p, c);
	slot[hole].node = NULL;
	/* Backward shift: pull later entries of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j]. */
	for (uint32_t j = (hole + 1) & mask; slot[j].node; j = (j + 1) & mask) {
		uint32_t home = slot[j].hv & mask;
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			slot[hole] = slot[j];
			slot[j].node = NULL;
			hole = j;
		}
	}
	if (p->nkids <= 1) {
		struct topic_knode *last = NULL;
		for (uint32_t i = 0; i < kcap && !last; i++)
			last = slot[i].node;
		free(slot);
		p->kbits = 0;
		p->kids.one = last;
		p->one_hv = last ? last->hv : 0;
	} else if (kcap > TOPIC_KIDS_MIN_CAP && p->nkids * 8 < kcap) {
		/* Shrinking is an optimisation: on OOM the larger table stays. */
		(void)kids_rehash(p, kcap / 2);
	}
}

void topic_kids_release(struct topic_knode *p)
{
	if (p->kbits)
		free(p->kids.slot);
	p->kbits = 0;
	p->nkids = 0;
	p->kids.one = NULL;
}
