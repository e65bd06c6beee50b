/*
 * timer.c - the deadline heap: keepalive, will delay and session expiry
 * deadlines in one binary min-heap of struct timer_node, and engine_tick(),
 * which fires what is due.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

static void heap_swap(struct engine *e, uint32_t a, uint32_t b)
{
	struct timer_node *t = e->heap[a];
	e->heap[a] = e->heap[b];
	e->heap[b] = t;
	e->heap[a]->idx = a + 1;
	e->heap[b]->idx = b + 1;
}

static void heap_up(struct engine *e, uint32_t i)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (e->heap[p]->at <= e->heap[i]->at)
			break;
		heap_swap(e, p, i);
		i = p;
	}
}

static void heap_down(struct engine *e, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < e->nheap && e->heap[l]->at < e->heap[m]->at)
			m = l;
		if (r < e->nheap && e->heap[r]->at < e->heap[m]->at)
			m = r;
		if (m == i)
			break;
		heap_swap(e, i, m);
		i = m;
	}
}

/* Takes t out of the heap; nothing when it is not scheduled. */
void timer_cancel(struct engine *e, struct timer_node *t)
{
	if (!t->idx)
		return;
	uint32_t i = t->idx - 1;
	t->idx = 0;
	e->nheap--;
	if (i == e->nheap)
		return;
	e->heap[i] = e->heap[e->nheap];
	e->heap[i]->idx = i + 1;
	heap_down(e, i);
	heap_up(e, i);
}

/* Schedules (or moves) t at `at`. Returns 0 or -1 on OOM (t unscheduled). */
int timer_set(struct engine *e, struct timer_node *t, uint64_t at)
{
	if (t->idx) {
		uint32_t i = t->idx - 1;
		t->at = at;
		heap_down(e, i);
		heap_up(e, t->idx - 1);
		return 0;
	}
	if (e->nheap == e->cap_heap) {
		uint32_t cap = e->cap_heap ? e->cap_heap * 2 : 64;
		struct timer_node **h = realloc(e->heap, cap * sizeof *h);
		if (!h)
			return -1;
		e->heap = h;
		e->cap_heap = cap;
	}
	t->at = at;
	e->heap[e->nheap] = t;
	t->idx = ++e->nheap;
	heap_up(e, e->nheap - 1);
	return 0;
}

uint64_t engine_tick(struct engine *e, uint64_t now_ms)
{
	e->now = now_ms;
	while (e->nheap && e->heap[0]->at <= now_ms) {
		struct timer_node *t = e->heap[0];
		timer_cancel(e, t);
		switch (t->kind) {
		case T_KEEPALIVE:
			client_keepalive_fire(e, container_of(t, struct engine_conn, keepalive_timer));
			break;
		case T_WILL:
			will_publish(e, container_of(t, struct will, t)->s);
			break;
		case T_EXPIRY:
			session_expire(e, container_of(t, struct session, expiry_timer));
			break;
		case T_RETAINED:
			retained_expire(e, container_of(t, struct emsg, expiry));
			break;
		case T_AUTH:
			authx_fire(e, t);
			break;
		}
	}
	return e->nheap ? e->heap[0]->at : UINT64_MAX;
}
