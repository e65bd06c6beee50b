/*
 * outq.c - output queues and outboxes (see outq.h). Owns output memory
 * only: writing it to a socket is the connection's job (conn.c) or a
 * layer's (tls.c).
 */
#include "transport/outq.h"

#include <stdlib.h>
#include <string.h>

/* What a queue keeps when it is reset. One loop pass of a busy connection
 * queues two segments per message (its head copy and its payload frame);
 * 16 segments freed the array of every connection that got more than 8
 * messages in a pass, for the next pass to realloc it. The pool bounds the
 * outboxes kept (OUTBOX_POOL_MAX), so this is at most 64 x 2 x 12 KiB. */
#define OUTQ_KEEP_BUF 4096 /* a queue keeps a copy buffer up to this size ... */
#define OUTQ_KEEP_SEGS 512 /* ... and a segment array up to this many */

void outq_reset(struct outq *q, bool keep)
{
	for (uint32_t i = 0; i < q->n; i++)
		frame_unref(q->segs[i].f);
	q->n = 0;
	q->blen = 0;
	q->bytes = 0;
	q->lat_read_sum = 0;
	q->lat_n = 0;
	if (!keep || q->bcap > OUTQ_KEEP_BUF) {
		free(q->buf);
		q->buf = NULL;
		q->bcap = 0;
	}
	if (!keep || q->cap > OUTQ_KEEP_SEGS) {
		free(q->segs);
		q->segs = NULL;
		q->cap = 0;
	}
}

void outq_free(struct outq *q)
{
	outq_reset(q, false);
	memset(q, 0, sizeof(*q));
}

static int outq_seg(struct outq *q, struct outseg **out)
{
	if (q->n == q->cap) {
		uint32_t ncap = q->cap ? q->cap * 2 : 4;
		struct outseg *s = realloc(q->segs, ncap * sizeof(*s));
		if (!s)
			return -1;
		q->segs = s;
		q->cap = ncap;
	}
	*out = &q->segs[q->n++];
	return 0;
}

int outq_copy(struct outq *q, const uint8_t *p, size_t len)
{
	struct outseg *s;
	if (len == 0)
		return 0;
	if (q->blen + len > q->bcap) {
		size_t ncap = q->bcap ? q->bcap : 256;
		while (ncap < q->blen + len)
			ncap *= 2;
		uint8_t *nb = realloc(q->buf, ncap);
		if (!nb)
			return -1;
		q->buf = nb;
		q->bcap = (uint32_t)ncap;
	}
	memcpy(q->buf + q->blen, p, len);
	/* Segments hold offsets, so a realloc above moved nothing they see. */
	struct outseg *last = q->n > 0 ? &q->segs[q->n - 1] : NULL;
	if (last && !last->f && last->off + last->len == q->blen) {
		last->len += (uint32_t)len;
	} else {
		if (outq_seg(q, &s) < 0)
			return -1;
		s->f = NULL;
		s->off = q->blen;
		s->len = (uint32_t)len;
	}
	q->blen += (uint32_t)len;
	q->bytes += len;
	return 0;
}

int outq_frame(struct outq *q, struct frame *f)
{
	struct outseg *s;
	if (!f || f->len == 0)
		return 0;
	if (outq_seg(q, &s) < 0)
		return -1;
	s->f = frame_ref(f);
	s->off = 0;
	s->len = f->len;
	q->bytes += f->len;
	return 0;
}

static const uint8_t *outseg_ptr(const struct outq *q, const struct outseg *s)
{
	return s->f ? s->f->data + s->off : q->buf + s->off;
}

int outq_iov(const struct outq *q, struct outq_pos pos, struct iovec *iov, int max, size_t *total)
{
	int cnt = 0;
	*total = 0;
	for (uint32_t i = pos.seg; i < q->n && cnt < max; i++, cnt++) {
		uint32_t skip = i == pos.seg ? pos.off : 0;
		iov[cnt].iov_base = (uint8_t *)outseg_ptr(q, &q->segs[i]) + skip;
		iov[cnt].iov_len = q->segs[i].len - skip;
		*total += iov[cnt].iov_len;
	}
	return cnt;
}

void outq_advance(const struct outq *q, struct outq_pos *pos, size_t n)
{
	while (n > 0 && pos->seg < q->n) {
		uint32_t left = q->segs[pos->seg].len - pos->off;
		if (n >= left) {
			n -= left;
			pos->seg++;
			pos->off = 0;
		} else {
			pos->off += (uint32_t)n;
			n = 0;
		}
	}
}

bool outq_done(const struct outq *q, struct outq_pos pos)
{
	return pos.seg >= q->n;
}

/*
 * Outboxes are pooled rather than freed: every CONNACK, SUBACK or PINGRESP
 * of an otherwise idle connection would otherwise allocate and free an
 * outbox and its buffers between the allocations of longer-lived
 * connections, and the holes they leave fragment the heap (measured:
 * about 70 bytes of RSS per idle connection).
 */
struct outbox *outbox_get(struct outbox_pool *pool)
{
	if (pool->n > 0)
		return pool->idle[--pool->n];
	return calloc(1, sizeof(struct outbox));
}

void outbox_put(struct outbox_pool *pool, struct outbox *o)
{
	if (!o)
		return;
	if (pool->n < OUTBOX_POOL_MAX) {
		outq_reset(&o->q[0], true);
		outq_reset(&o->q[1], true);
		o->written.seg = o->written.off = 0;
		pool->idle[pool->n++] = o;
		return;
	}
	outq_free(&o->q[0]);
	outq_free(&o->q[1]);
	free(o);
}

void outbox_pool_clear(struct outbox_pool *pool)
{
	for (int i = 0; i < pool->n; i++) {
		outq_free(&pool->idle[i]->q[0]);
		outq_free(&pool->idle[i]->q[1]);
		free(pool->idle[i]);
	}
	pool->n = 0;
}
