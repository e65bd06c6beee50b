/*
 * wire.c - the encoding of a message between nodes (wire.h).
 */
#include "cluster/wire.h"

#include <string.h>

/* A message outside the journal (QoS 0, seq 0) goes as version 1: 16
 * bytes less on every QoS 0 message. */
static size_t head_of(const struct engine_cluster_msg *m)
{
	return m->seq ? CLUSTER_WIRE_HEAD : 20;
}

size_t cluster_wire_size(const struct engine_cluster_msg *m)
{
	return head_of(m) + m->topic_len + m->origin_len + m->props_len + m->payload_len;
}

static void be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

void cluster_wire_encode(uint8_t *out, const struct engine_cluster_msg *m)
{
	size_t head = head_of(m);
	out[0] = 'M';
	out[1] = head == 20 ? 1 : 2;
	out[2] = (uint8_t)((m->qos & 3) | (m->retain ? 4 : 0));
	out[3] = 0;
	be(out + 4, m->topic_len, 2);
	be(out + 6, m->origin_len, 2);
	be(out + 8, m->props_len, 4);
	be(out + 12, m->expiry_at, 8);
	if (head == CLUSTER_WIRE_HEAD) {
		be(out + 20, m->node_run, 8);
		be(out + 28, m->seq, 8);
	}
	uint8_t *p = out + head;
	memcpy(p, m->topic, m->topic_len);
	p += m->topic_len;
	if (m->origin_len)
		memcpy(p, m->origin_id, m->origin_len);
	p += m->origin_len;
	if (m->props_len)
		memcpy(p, m->props, m->props_len);
	p += m->props_len;
	if (m->payload_len)
		memcpy(p, m->payload, m->payload_len);
}

int cluster_wire_decode(const uint8_t *b, size_t n, struct engine_cluster_msg *m)
{
	memset(m, 0, sizeof *m);
	size_t head = n >= 2 && b[1] == 1 ? 20 : CLUSTER_WIRE_HEAD;
	if (n < head || b[0] != 'M' || b[1] < 1 || b[1] > 2 || (b[2] & 3) == 3 || (b[2] & ~7u) || b[3])
		return -1;
	size_t tl = (size_t)get_be(b + 4, 2), ol = (size_t)get_be(b + 6, 2);
	size_t pl = (size_t)get_be(b + 8, 4);
	size_t rest = n - head;
	if (tl > rest || ol > rest - tl || pl > rest - tl - ol)
		return -1;
	if (head == CLUSTER_WIRE_HEAD) {
		m->node_run = get_be(b + 20, 8);
		m->seq = get_be(b + 28, 8);
		if (!m->seq)
			return -1; /* written as version 1: one encoding per message */
	}
	const uint8_t *p = b + head;
	m->qos = b[2] & 3;
	m->retain = (b[2] & 4) != 0;
	m->expiry_at = get_be(b + 12, 8);
	m->topic = p;
	m->topic_len = tl;
	m->origin_id = p + tl;
	m->origin_len = ol;
	m->props = pl ? p + tl + ol : NULL;
	m->props_len = pl;
	m->payload = p + tl + ol + pl;
	m->payload_len = rest - tl - ol - pl;
	return 0;
}

void cluster_wire_list_start(uint8_t *out, char tag)
{
	out[0] = (uint8_t)tag;
	out[1] = 1;
}

void cluster_wire_list_put(uint8_t *out, const uint8_t *msg, size_t len)
{
	be(out, len, CLUSTER_LIST_ITEM);
	memcpy(out + CLUSTER_LIST_ITEM, msg, len);
}

int cluster_wire_list_next(const uint8_t *d, size_t n, char tag, size_t *at, const uint8_t **msg,
			   size_t *len)
{
	if (*at == 0) {
		if (n < CLUSTER_LIST_HEAD || d[0] != (uint8_t)tag || d[1] != 1)
			return -1;
		*at = CLUSTER_LIST_HEAD;
	}
	if (*at == n)
		return 0;
	if (n - *at < CLUSTER_LIST_ITEM)
		return -1;
	size_t l = (size_t)get_be(d + *at, CLUSTER_LIST_ITEM);
	if (l > n - *at - CLUSTER_LIST_ITEM)
		return -1;
	*msg = d + *at + CLUSTER_LIST_ITEM;
	*len = l;
	*at += CLUSTER_LIST_ITEM + l;
	return 1;
}
