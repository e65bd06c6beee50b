/*
 * batch.c - a batch: the operations of one transaction and the bytes
 * they carry (client ids, filters, message content), in two growing
 * arrays that are reset, not freed, between batches, so a warm store makes
 * no malloc per change.
 */
#include "store/internal.h"

#include <stdlib.h>
#include <string.h>

struct batch *batch_new(void)
{
	return calloc(1, sizeof(struct batch));
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	free(b->ops);
	free(b->data);
	free(b);
}

void batch_reset(struct batch *b)
{
	b->num = 0;
	b->n = 0;
	b->live = 0;
	b->data_len = 0;
	b->first_ms = 0;
	b->msgs = 0;
	/* A batch that grew huge (a long failure) gives its memory back. */
	if (b->cap > 65536) {
		free(b->ops);
		b->ops = NULL;
		b->cap = 0;
	}
	if (b->data_cap > (16u << 20)) {
		free(b->data);
		b->data = NULL;
		b->data_cap = 0;
	}
}

struct op *batch_push(struct batch *b, uint8_t kind)
{
	if (b->n == b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 256;
		struct op *v = realloc(b->ops, cap * sizeof *v);
		if (!v)
			return NULL;
		b->ops = v;
		b->cap = cap;
	}
	struct op *op = &b->ops[b->n++];
	memset(op, 0, sizeof *op);
	op->kind = kind;
	b->live++;
	return op;
}

/* Room for n more bytes. Returns 0 or -1. */
static int batch_room(struct batch *b, size_t n)
{
	if (b->data_len + n <= b->data_cap)
		return 0;
	size_t cap = b->data_cap ? b->data_cap : 4096;
	while (cap < b->data_len + n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -1;
	b->data = d;
	b->data_cap = cap;
	return 0;
}

int batch_bytes(struct batch *b, struct op *op, const void *p, size_t n)
{
	/* the next block stays 8-byte aligned (struct op_msg_head) */
	size_t padded = (n + 7) & ~(size_t)7;
	if (n > UINT32_MAX || batch_room(b, padded) < 0)
		return -1;
	op->off = (uint32_t)b->data_len;
	op->len = (uint32_t)n;
	if (n)
		memcpy(b->data + b->data_len, p, n);
	b->data_len += padded;
	return 0;
}

int batch_bytes2(struct batch *b, struct op *op, const void *p1, size_t n1, const void *p2,
		 size_t n2)
{
	if (n1 > UINT32_MAX || n2 > UINT32_MAX - n1 || batch_room(b, (n1 + n2 + 7) & ~(size_t)7) < 0)
		return -1;
	uint8_t *d = b->data + b->data_len;
	if (n1)
		memcpy(d, p1, n1);
	if (n2)
		memcpy(d + n1, p2, n2);
	op->off = (uint32_t)b->data_len;
	op->len = (uint32_t)(n1 + n2);
	b->data_len += (n1 + n2 + 7) & ~(size_t)7;
	return 0;
}

int batch_message(struct batch *b, struct op *op, const struct midge_message *v,
		  const struct midge_str *user)
{
	size_t ulen = user && user->p ? user->len : 0;
	struct op_msg_head h = {(uint32_t)v->topic.len, (uint32_t)v->payload_len,
				(uint32_t)v->props_len, (uint32_t)v->origin.len, (uint32_t)ulen};
	size_t n = sizeof h + h.topic_len + h.payload_len + h.props_len + h.origin_len + ulen;
	if (n > UINT32_MAX || batch_room(b, (n + 7) & ~(size_t)7) < 0)
		return -1;
	uint8_t *p = b->data + b->data_len;
	op->off = (uint32_t)b->data_len;
	op->len = (uint32_t)n;
	memcpy(p, &h, sizeof h);
	p += sizeof h;
	memcpy(p, v->topic.p, h.topic_len);
	p += h.topic_len;
	if (h.payload_len)
		memcpy(p, v->payload, h.payload_len);
	p += h.payload_len;
	if (h.props_len)
		memcpy(p, v->props, h.props_len);
	p += h.props_len;
	if (h.origin_len)
		memcpy(p, v->origin.p, h.origin_len);
	p += h.origin_len;
	if (ulen)
		memcpy(p, user->p, ulen);
	b->data_len += (n + 7) & ~(size_t)7;
	return 0;
}

void batch_message_view(const struct batch *b, const struct op *op, struct op_msg_head *h,
			const uint8_t **topic, const uint8_t **payload, const uint8_t **props,
			const uint8_t **origin, const uint8_t **user)
{
	const uint8_t *p = b->data + op->off;
	memcpy(h, p, sizeof *h);
	p += sizeof *h;
	*topic = p;
	p += h->topic_len;
	*payload = p;
	p += h->payload_len;
	*props = p;
	p += h->props_len;
	*origin = p;
	p += h->origin_len;
	*user = p;
}
