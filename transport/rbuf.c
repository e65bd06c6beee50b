/*
 * rbuf.c - receive buffers and their pool (see rbuf.h). Owns nothing but
 * memory: no socket, no framing.
 */
#include "transport/rbuf.h"

#include <stdlib.h>
#include <string.h>

/* Pooled buffers are RBUF_SIZE bytes in all, bookkeeping included. */
#define RBUF_CAP ((uint32_t)(RBUF_SIZE - sizeof(struct rbuf)))

static struct rbuf *rbuf_get(struct rbuf_pool *pool, uint32_t size)
{
	struct rbuf *b;
	uint32_t cap = RBUF_CAP;
	if (size <= RBUF_CAP && pool->n > 0)
		b = pool->idle[--pool->n];
	else if (size <= RBUF_CAP)
		b = malloc(RBUF_SIZE);
	else
		b = malloc(sizeof(*b) + (cap = size));
	if (b) {
		b->len = b->need = 0;
		b->cap = cap;
	}
	return b;
}

void rbuf_put(struct rbuf_pool *pool, struct rbuf *b)
{
	if (!b)
		return;
	if (b->cap == RBUF_CAP && pool->n < RBUF_POOL_MAX)
		pool->idle[pool->n++] = b;
	else
		free(b);
}

int rbuf_reserve(struct rbuf_pool *pool, struct rbuf **pb, uint32_t need)
{
	struct rbuf *b = *pb;
	if (!b) {
		*pb = rbuf_get(pool, need > 1 ? need : 1);
		return *pb ? 0 : -1;
	}
	uint32_t want = need > b->len + 1 ? need : b->len + 1;
	if (b->cap >= want)
		return 0;
	uint32_t ncap = b->cap * 2 > want ? b->cap * 2 : want;
	if (need && ncap > need && need > b->cap)
		ncap = need;
	struct rbuf *nb = malloc(sizeof(*nb) + ncap);
	if (!nb)
		return -1;
	nb->len = b->len;
	nb->need = b->need;
	nb->cap = ncap;
	memcpy(nb->data, b->data, b->len);
	rbuf_put(pool, b);
	*pb = nb;
	return 0;
}

int rbuf_append(struct rbuf_pool *pool, struct rbuf **pb, const uint8_t *p, uint32_t len,
		uint32_t need)
{
	uint32_t have = *pb ? (*pb)->len : 0;
	if (len > UINT32_MAX - have)
		return -1;
	uint32_t want = have + len > need ? have + len : need;
	if (rbuf_reserve(pool, pb, want) < 0)
		return -1;
	memcpy((*pb)->data + (*pb)->len, p, len);
	(*pb)->len += len;
	return 0;
}

void rbuf_consume(struct rbuf *b, uint32_t used)
{
	if (used == 0)
		return;
	memmove(b->data, b->data + used, b->len - used);
	b->len -= used;
}

void rbuf_release_if_empty(struct rbuf_pool *pool, struct rbuf **pb)
{
	if (*pb && (*pb)->len == 0) {
		rbuf_put(pool, *pb);
		*pb = NULL;
	}
}

void rbuf_pool_clear(struct rbuf_pool *pool)
{
	for (int i = 0; i < pool->n; i++)
		free(pool->idle[i]);
	pool->n = 0;
}
