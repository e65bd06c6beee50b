/*
 * chunk.c - input chunks and their per-thread pool (see chunk.h).
 */
#include "transport/chunk.h"

#include <stdlib.h>

/* References that stand for "still being filled": more than any chunk
 * can have reads (CHUNK_SIZE one-byte reads). */
#define CHUNK_BIAS (1u << 30)

void chunk_pool_init(struct chunk_pool *p, int max)
{
	p->cur = NULL;
	p->free = NULL;
	p->n_free = 0;
	p->n_total = 0;
	p->max = max > 0 ? max : CHUNK_POOL_MAX;
	atomic_init(&p->returned, NULL);
	atomic_init(&p->starved, false);
}

static void chunk_free_list(struct chunk *c)
{
	while (c) {
		struct chunk *n = c->next;
		free(c);
		c = n;
	}
}

void chunk_pool_clear(struct chunk_pool *p)
{
	free(p->cur);
	chunk_free_list(p->free);
	chunk_free_list(atomic_exchange(&p->returned, NULL));
	p->cur = NULL;
	p->free = NULL;
	p->n_free = p->n_total = 0;
}

/* The I/O thread is done filling c: the bias goes, less the reads still
 * held by records. */
static void chunk_retire(struct chunk_pool *p, struct chunk *c)
{
	chunk_put(p, c, CHUNK_BIAS - c->reads);
}

/* A chunk to fill: a free one, one the engine gave back, or a new one
 * within the budget. */
static struct chunk *chunk_get(struct chunk_pool *p)
{
	struct chunk *c = p->free;
	if (!c) {
		/* seq_cst, as the starved flag: see chunk_room */
		c = atomic_exchange(&p->returned, NULL);
		for (struct chunk *n; c; c = n) {
			n = c->next;
			if (p->n_free < CHUNK_IDLE_KEPT || n == NULL) {
				c->next = p->free;
				p->free = c;
				p->n_free++;
			} else {
				free(c);
				p->n_total--;
			}
		}
		c = p->free;
	}
	if (c) {
		p->free = c->next;
		p->n_free--;
	} else if (p->n_total < p->max && (c = malloc(sizeof(*c)))) {
		p->n_total++;
	} else {
		return NULL;
	}
	atomic_store_explicit(&c->refs, CHUNK_BIAS, memory_order_relaxed);
	c->used = c->reads = 0;
	c->next = NULL;
	return c;
}

uint8_t *chunk_room(struct chunk_pool *p, uint32_t *room)
{
	struct chunk *c = p->cur;
	if (!c || CHUNK_SIZE - c->used < CHUNK_MIN_ROOM) {
		struct chunk *fresh = chunk_get(p);
		if (!fresh) {
			/* Flag first, look again after: chunk_put pushes, then
			 * reads the flag (both sequentially consistent), so
			 * either we find its chunk or it sees the flag and
			 * wakes us. */
			atomic_store(&p->starved, true);
			fresh = chunk_get(p);
			if (!fresh)
				return NULL;
		}
		if (atomic_load_explicit(&p->starved, memory_order_relaxed))
			atomic_store(&p->starved, false);
		if (c)
			chunk_retire(p, c);
		p->cur = c = fresh;
	}
	*room = CHUNK_SIZE - c->used;
	return c->data + c->used;
}

struct chunk *chunk_take(struct chunk_pool *p, uint32_t n)
{
	struct chunk *c = p->cur;
	c->used += n;
	c->reads++;
	return c;
}

bool chunk_put(struct chunk_pool *p, struct chunk *c, uint32_t n)
{
	if (atomic_fetch_sub_explicit(&c->refs, n, memory_order_acq_rel) != n)
		return false;
	struct chunk *top = atomic_load_explicit(&p->returned, memory_order_relaxed);
	do
		c->next = top;
	while (!atomic_compare_exchange_weak(&p->returned, &top, c));
	return atomic_load(&p->starved);
}
