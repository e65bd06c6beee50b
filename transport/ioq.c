/*
 * ioq.c - the single-producer single-consumer queue of records in linked
 * blocks (see ioq.h).
 *
 * Ordering: the producer writes a record, then publishes it with a
 * release store of its block's count; the consumer reads the count with
 * acquire before the record. A block is linked (release) before the
 * producer writes into it, and the consumer leaves a block only once it
 * has read all IOQ_BLOCK_RECS records and the next block exists, so the
 * producer is done with it: only then does it go back.
 */
#include "transport/ioq.h"

#include <stdlib.h>
#include <string.h>

#define IOQ_SPARES_KEPT 64 /* blocks a producer keeps after a backlog (~260 KiB) */

static struct ioq_block *ioq_block_new(struct ioq *q)
{
	struct ioq_block *b = q->spares;
	if (!b) {
		/* what the consumer has finished with since we last looked */
		b = atomic_exchange_explicit(&q->returned, NULL, memory_order_acquire);
		/* after a backlog the queue shrinks back: keep a few spares */
		for (q->spares_n = 0; b; q->spares_n++) {
			struct ioq_block *n = b->spare_next;
			if (q->spares_n < IOQ_SPARES_KEPT) {
				b->spare_next = q->spares;
				q->spares = b;
			} else {
				free(b);
				q->spares_n--;
			}
			b = n;
		}
		b = q->spares;
	}
	if (b) {
		q->spares = b->spare_next;
		q->spares_n--;
	} else if (!(b = malloc(sizeof(*b)))) {
		return NULL;
	}
	atomic_store_explicit(&b->count, 0, memory_order_relaxed);
	atomic_store_explicit(&b->next, NULL, memory_order_relaxed);
	b->spare_next = NULL;
	return b;
}

int ioq_init(struct ioq *q)
{
	memset(q, 0, sizeof(*q));
	atomic_store(&q->returned, NULL);
	q->tail = ioq_block_new(q);
	if (!q->tail)
		return -1;
	q->head = q->tail;
	return 0;
}

static void ioq_free_list(struct ioq_block *b, bool spare_links)
{
	while (b) {
		struct ioq_block *n =
			spare_links ? b->spare_next : atomic_load_explicit(&b->next, memory_order_relaxed);
		free(b);
		b = n;
	}
}

void ioq_free(struct ioq *q)
{
	ioq_free_list(q->head, false);
	ioq_free_list(q->spares, true);
	ioq_free_list(atomic_exchange(&q->returned, NULL), true);
	memset(q, 0, sizeof(*q));
}

int ioq_push(struct ioq *q, const struct ioq_rec *r)
{
	if (q->tail_n == IOQ_BLOCK_RECS) {
		struct ioq_block *b = ioq_block_new(q);
		if (!b)
			return -1;
		atomic_store_explicit(&q->tail->next, b, memory_order_release);
		q->tail = b;
		q->tail_n = 0;
	}
	q->tail->r[q->tail_n++] = *r;
	atomic_store_explicit(&q->tail->count, q->tail_n, memory_order_release);
	q->pushed++;
	return 0;
}

/* The consumer is done with b: back to the producer. */
static void ioq_give_back(struct ioq *q, struct ioq_block *b)
{
	struct ioq_block *top = atomic_load_explicit(&q->returned, memory_order_relaxed);
	do
		b->spare_next = top;
	while (!atomic_compare_exchange_weak_explicit(&q->returned, &top, b, memory_order_release,
						      memory_order_relaxed));
}

bool ioq_pop(struct ioq *q, struct ioq_rec *r)
{
	for (;;) {
		struct ioq_block *b = q->head;
		uint32_t n = atomic_load_explicit(&b->count, memory_order_acquire);
		if (q->head_i < n) {
			*r = b->r[q->head_i++];
			return true;
		}
		if (q->head_i < IOQ_BLOCK_RECS)
			return false;
		struct ioq_block *next = atomic_load_explicit(&b->next, memory_order_acquire);
		if (!next)
			return false;
		q->head = next;
		q->head_i = 0;
		ioq_give_back(q, b);
	}
}
