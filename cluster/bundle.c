/*
 * bundle.c - runs of messages to one subject as one NATS message, a
 * bundle (wire.h, docs/cluster.md "Bundles"): made on the cluster thread
 * from consecutive records of the outgoing ring, taken apart on a
 * libnats thread into records of the incoming ring.
 *
 * nats-server and libnats on both sides cost per NATS message far more
 * than per byte, and a publisher's messages arrive in runs (one read
 * from its socket holds many). Only consecutive messages are bundled:
 * the order of messages stays the order the engine routed them in (the
 * journal's marks rely on it). A run of one goes as the message itself.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/wire.h"

/* a bundle's bound (below NATS's max_payload, less a margin for headers) */
#define BUNDLE_MAX 65536

natsStatus bundle_flush(struct cluster *c, struct bundle *r)
{
	natsStatus s = NATS_OK;
	if (r->n == 1)
		s = natsConnection_Publish(c->nc, rec_name(r->first), rec_data(r->first),
					   (int)r->first->data_len);
	else if (r->n > 1)
		s = natsConnection_Publish(c->nc, rec_name(r->first), c->bbuf, (int)r->len);
	if (s == NATS_OK)
		atomic_fetch_add(&c->forwarded, r->n);
	r->n = 0;
	return s;
}

natsStatus bundle_add(struct cluster *c, struct bundle *r, const struct rec *x)
{
	if (!c->bbuf) {
		int64_t mp = natsConnection_GetMaxPayload(c->nc);
		c->bcap = mp > 4096 && (uint64_t)mp - 1024 < BUNDLE_MAX ? (size_t)mp - 1024 : BUNDLE_MAX;
		if (!(c->bbuf = malloc(c->bcap)))
			c->bcap = 0; /* every message goes alone */
	}
	size_t item = CLUSTER_LIST_ITEM + x->data_len;
	if (r->n && r->first->name_len == x->name_len &&
	    memcmp(rec_name(r->first), rec_name(x), x->name_len) == 0 &&
	    (r->n > 1 ? r->len : CLUSTER_LIST_HEAD + CLUSTER_LIST_ITEM + r->first->data_len) + item <=
		    c->bcap) {
		if (r->n == 1) {
			cluster_wire_list_start(c->bbuf, 'B');
			cluster_wire_list_put(c->bbuf + CLUSTER_LIST_HEAD, rec_data(r->first),
					      r->first->data_len);
			r->len = CLUSTER_LIST_HEAD + CLUSTER_LIST_ITEM + r->first->data_len;
		}
		cluster_wire_list_put(c->bbuf + r->len, rec_data(x), x->data_len);
		r->len += item;
		r->n++;
		return NATS_OK;
	}
	natsStatus s = bundle_flush(c, r);
	r->first = x;
	r->n = 1;
	return s;
}

void cluster_input_bundle(struct cluster *c, const char *filter, size_t flen, const uint8_t *d,
			  size_t n)
{
	const uint8_t *msg;
	size_t at = 0, l;
	int more;
	uint64_t dropped = 0;
	pthread_mutex_lock(&c->in.mu);
	while ((more = cluster_wire_list_next(d, n, 'B', &at, &msg, &l)) > 0) {
		uint8_t *p;
		if (ring_put(&c->in, REC_INPUT, filter, flen, l, 0, &p) == 0)
			memcpy(p, msg, l);
		else
			dropped++;
	}
	pthread_mutex_unlock(&c->in.mu);
	if (more < 0)
		dropped++; /* the rest of a damaged bundle */
	if (dropped)
		atomic_fetch_add(&c->dropped_in, dropped);
	cluster_wake(c);
}
