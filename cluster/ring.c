/*
 * ring.c - the bounded record ring between the engine, the cluster
 * thread and libnats's threads (ring.h).
 */
#include "cluster/ring.h"

#include <stdlib.h>
#include <string.h>

int ring_init(struct ring *r, uint64_t cap)
{
	memset(r, 0, sizeof *r);
	cap = (cap + 7) & ~7ull;
	r->buf = malloc(cap);
	if (!r->buf)
		return -1;
	r->cap = cap;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	return 0;
}

void ring_free(struct ring *r)
{
	if (!r->buf)
		return;
	free(r->buf);
	r->buf = NULL;
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

int ring_put(struct ring *r, uint8_t kind, const char *name, size_t name_len, size_t data_len,
	     uint64_t ticket, uint8_t **data)
{
	uint64_t need = (sizeof(struct rec) + name_len + 1 + data_len + 7) & ~7ull;
	if (name_len > UINT16_MAX || data_len > UINT32_MAX || need > r->cap / 2)
		return -1;
	uint64_t off = r->wpos % r->cap, skip = 0;
	if (r->cap - off < need)
		skip = r->cap - off; /* starts again at the front */
	if (r->wpos + skip + need - r->rpos > r->cap)
		return -1;
	if (skip) {
		if (skip >= sizeof(struct rec)) {
			struct rec *s = (struct rec *)(void *)(r->buf + off);
			memset(s, 0, sizeof *s);
			s->kind = REC_SKIP;
			s->len = (uint32_t)skip;
		}
		r->wpos += skip;
		off = 0;
	}
	struct rec *x = (struct rec *)(void *)(r->buf + off);
	x->len = (uint32_t)need;
	x->kind = kind;
	x->pad = 0;
	x->name_len = (uint16_t)name_len;
	x->data_len = (uint32_t)data_len;
	x->pad2 = 0;
	x->ticket = ticket;
	char *n = (char *)(x + 1);
	if (name_len)
		memcpy(n, name, name_len);
	n[name_len] = '\0';
	*data = (uint8_t *)n + name_len + 1;
	r->wpos += need;
	return 0;
}

const struct rec *ring_at(const struct ring *r, uint64_t *pos, uint64_t end)
{
	while (*pos < end) {
		uint64_t off = *pos % r->cap;
		if (r->cap - off < sizeof(struct rec)) { /* a tail too short for a skip record */
			*pos += r->cap - off;
			continue;
		}
		const struct rec *x = (const struct rec *)(const void *)(r->buf + off);
		*pos += x->len;
		if (x->kind != REC_SKIP)
			return x;
	}
	return NULL;
}
