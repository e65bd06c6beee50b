/*
 * topic_kids.c - the literal-children table shared by the subscription trie
 * and the retained store: linear probing, load at most 3/4, backward-shift
 * deletion (no tombstones, so churn never degrades lookups), shrinking when
 * mostly empty, and a single child kept inline without a table.
 */
#include "engine/topic_kids.h"

#include <stdlib.h>

enum { TOPIC_KIDS_MIN_CAP = 4 };

static void kids_put(struct topic_knode **slot, uint32_t cap, struct topic_knode *c)
{
	uint32_t mask = cap - 1;
	uint32_t i = (uint32_t)c->hv & mask;
	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = c;
}

/* Moves p's children into a fresh table of cap slots. -1 on OOM, p unchanged. */
static int kids_rehash(struct topic_knode *p, uint32_t cap)
{
	struct topic_knode **slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	for (uint32_t i = 0; i < topic_kids_slots(p); i++) {
		struct topic_knode *c = topic_kids_at(p, i);
		if (c)
			kids_put(slot, cap, c);
	}
	if (p->kcap)
		free(p->kids.slot);
	p->kids.slot = slot;
	p->kcap = cap;
	return 0;
}

int topic_kids_add(struct topic_knode *p, struct topic_knode *c)
{
	if (p->kcap == 0 && p->nkids == 0) {
		p->kids.one = c;
	} else {
		if (p->kcap == 0 || (p->nkids + 1) * 4 > p->kcap * 3) {
			uint32_t cap = p->kcap ? p->kcap * 2 : TOPIC_KIDS_MIN_CAP;
			if (cap == 0 || kids_rehash(p, cap) < 0)
				return -1;
		}
		kids_put(p->kids.slot, p->kcap, c);
	}
	p->nkids++;
	c->parent = p;
	return 0;
}

uint32_t topic_kids_slot_of(const struct topic_knode *p, const struct topic_knode *c)
{
	if (p->kcap == 0)
		return 0;
	uint32_t mask = p->kcap - 1;
	uint32_t i = (uint32_t)c->hv & mask;
	while (p->kids.slot[i] != c)
		i = (i + 1) & mask;
	return i;
}

void topic_kids_del(struct topic_knode *p, struct topic_knode *c)
{
	c->parent = NULL;
	p->nkids--;
	if (p->kcap == 0) {
		p->kids.one = NULL;
		return;
	}
	uint32_t mask = p->kcap - 1;
	uint32_t hole = topic_kids_slot_of(p, c);
	p->kids.slot[hole] = NULL;
	/* Backward shift: pull later entries of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j]. */
	for (uint32_t j = (hole + 1) & mask; p->kids.slot[j]; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)p->kids.slot[j]->hv & mask;
		int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			p->kids.slot[hole] = p->kids.slot[j];
			p->kids.slot[j] = NULL;
			hole = j;
		}
	}
	if (p->nkids <= 1) {
		struct topic_knode *last = NULL;
		for (uint32_t i = 0; i < p->kcap && !last; i++)
			last = p->kids.slot[i];
		free(p->kids.slot);
		p->kcap = 0;
		p->kids.one = last;
	} else if (p->kcap > TOPIC_KIDS_MIN_CAP && p->nkids * 8 < p->kcap) {
		/* Shrinking is an optimisation: on OOM the larger table stays. */
		(void)kids_rehash(p, p->kcap / 2);
	}
}

void topic_kids_release(struct topic_knode *p)
{
	if (p->kcap)
		free(p->kids.slot);
	p->kcap = 0;
	p->nkids = 0;
	p->kids.one = NULL;
}
