/*
 * interest.c - which filters this node's clients subscribed to, counted
 * per filter, and the NATS subscriptions that bring other nodes' messages
 * for them (cluster/internal.h says which thread touches what): a
 * shared filter $share/G/F is one entry, subscribed as a NATS queue
 * group (one member in the whole cluster gets each message). The
 * engine thread keeps the table and posts changes; the cluster thread
 * subscribes and unsubscribes; libnats' threads deliver into the
 * incoming ring.
 */
#include <stdlib.h>
#include <string.h>

#include "cluster/internal.h"
#include "cluster/subject.h"
#include "transport/log.h"

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static struct interest **interest_slot(struct cluster *c, const uint8_t *f, size_t len)
{
	struct interest **p = &c->table[hash_bytes(f, len) & (c->table_cap - 1)];
	while (*p && !((*p)->len == len && memcmp((*p)->filter, f, len) == 0))
		p = &(*p)->next;
	return p;
}

/* Doubles the table past a load of one. Returns 0 or -1. */
static int interest_grow(struct cluster *c)
{
	uint32_t cap = c->table_cap * 2;
	struct interest **t = calloc(cap, sizeof *t);
	if (!t)
		return -1;
	for (uint32_t i = 0; i < c->table_cap; i++) {
		for (struct interest *x = c->table[i], *nx; x; x = nx) {
			nx = x->next;
			uint32_t h = hash_bytes(x->filter, x->len) & (cap - 1);
			x->next = t[h];
			t[h] = x;
		}
	}
	free(c->table);
	c->table = t;
	c->table_cap = cap;
	return 0;
}

int cluster_interest_init(struct cluster *c)
{
	c->cmds_tail = &c->cmds;
	c->table_cap = 64;
	c->table = calloc(c->table_cap, sizeof *c->table);
	return c->table ? 0 : -1;
}

static void command_post(struct cluster *c, struct interest *in, bool on)
{
	struct command *k = malloc(sizeof *k);
	if (!k) {
		log_err("cluster: out of memory: the NATS subscription of a filter is not changed");
		return;
	}
	k->next = NULL;
	k->in = in;
	k->on = on;
	pthread_mutex_lock(&c->out.mu);
	*c->cmds_tail = k;
	c->cmds_tail = &k->next;
	c->cmds_posted++;
	pthread_cond_signal(&c->out.cv);
	pthread_mutex_unlock(&c->out.mu);
}

void cluster_interest_change(void *ctx, const uint8_t *f, size_t len, bool on)
{
	struct cluster *c = ctx;
	struct interest **p = interest_slot(c, f, len);
	if (on) {
		if (*p) {
			(*p)->count++;
			return;
		}
		if (c->table_n >= c->table_cap && interest_grow(c) == 0)
			p = interest_slot(c, f, len);
		struct interest *in = calloc(1, sizeof *in + len);
		if (!in) {
			log_err("cluster: out of memory: a filter gets no messages from other nodes");
			return;
		}
		in->count = 1;
		in->c = c;
		in->len = (uint16_t)len;
		memcpy(in->filter, f, len);
		*p = in;
		c->table_n++;
		command_post(c, in, true);
	} else if (*p && --(*p)->count == 0) {
		struct interest *in = *p;
		*p = in->next;
		c->table_n--;
		command_post(c, in, false); /* the cluster thread frees it */
	}
}

/* libnats thread: a message for one of this node's filters. */
static void on_nats_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	struct interest *in = closure;
	const uint8_t *d = (const uint8_t *)natsMsg_GetData(msg);
	size_t n = (size_t)natsMsg_GetDataLength(msg);
	if (n && d[0] == 'B')
		cluster_input_bundle(in->c, (const char *)in->filter, in->len, d, n);
	else
		cluster_input_put(in->c, REC_INPUT, (const char *)in->filter, in->len, d, n);
	natsMsg_Destroy(msg);
}

/* libnats thread: a NATS subscription of in is over; the last one frees it. */
static void on_sub_complete(void *closure)
{
	struct interest *in = closure;
	if (atomic_fetch_sub(&in->pending, 1) == 1)
		free(in);
}

void cluster_interest_apply(struct cluster *c, struct command *k)
{
	struct interest *in = k->in;
	if (!k->on) {
		/* the last completion frees in: nothing of it is read after */
		natsSubscription *subs[2] = {in->subs[0], in->subs[1]};
		if (!subs[0] && !subs[1])
			free(in); /* never subscribed: no completion will come */
		for (int i = 0; i < 2; i++) {
			if (subs[i]) {
				atomic_fetch_sub(&c->subjects, 1);
				natsSubscription_Unsubscribe(subs[i]);
				natsSubscription_Destroy(subs[i]);
			}
		}
		return;
	}
	/* $share/G/F: F's subject in a queue group named after G, on qnc */
	const uint8_t *f = in->filter, *g = NULL;
	size_t flen = in->len, glen = 0;
	char subj[CLUSTER_SUBJECT_MAX], queue[CLUSTER_SUBJECT_MAX];
	if (flen > 7 && memcmp(f, "$share/", 7) == 0) {
		g = f + 7;
		f = memchr(g, '/', flen - 7);
		if (!f)
			return;
		glen = (size_t)(f - g);
		f++;
		flen = in->len - (size_t)(f - in->filter);
		if (cluster_subject_topic(queue, sizeof queue, c->name, g, glen) < 0)
			return;
	}
	bool parent;
	int sl = cluster_subject_filter(subj, sizeof subj, c->name, f, flen, &parent);
	if (sl < 0)
		return;
	int n = parent ? 2 : 1;
	atomic_store(&in->pending, n);
	for (int i = 0; i < n; i++) {
		if (i == 1)
			subj[sl - 2] = '\0'; /* "a.>" and "a": MQTT's a/# matches a */
		natsStatus s = g ? natsConnection_QueueSubscribe(&in->subs[i], c->qnc, subj, queue,
								on_nats_msg, in)
				 : natsConnection_Subscribe(&in->subs[i], c->nc, subj, on_nats_msg, in);
		if (s == NATS_OK) {
			natsSubscription_SetPendingLimits(in->subs[i], -1, 256 * 1024 * 1024);
			natsSubscription_SetOnCompleteCB(in->subs[i], on_sub_complete, in);
			atomic_fetch_add(&c->subjects, 1);
		} else {
			in->subs[i] = NULL;
			atomic_fetch_sub(&in->pending, 1);
		}
	}
}

/* Unsubscribes in's NATS subscriptions. The last completion frees in,
 * on a libnats thread, perhaps before this returns: nothing of in is
 * read after the first unsubscribe, and whoever pointed at in has let go
 * of it before. */
static void interest_unsubscribe(struct interest *in)
{
	natsSubscription *subs[2] = {in->subs[0], in->subs[1]};
	for (int k = 0; k < 2; k++)
		if (subs[k]) {
			natsSubscription_Unsubscribe(subs[k]);
			natsSubscription_Destroy(subs[k]);
		}
}

void cluster_interest_close(struct cluster *c)
{
	/* the cluster thread has stopped: the table and the commands it had
	 * not applied are this thread's */
	for (uint32_t i = 0; i < c->table_cap; i++) {
		struct interest **pp = &c->table[i];
		while (*pp) {
			struct interest *x = *pp;
			if (!x->subs[0] && !x->subs[1]) {
				pp = &x->next; /* never subscribed: cluster_interest_free's */
				continue;
			}
			*pp = x->next;
			c->table_n--;
			interest_unsubscribe(x);
		}
	}
	for (struct command *k = c->cmds; k; k = k->next) {
		if (!k->on && k->in && (k->in->subs[0] || k->in->subs[1])) {
			struct interest *in = k->in;
			k->in = NULL;
			interest_unsubscribe(in);
		}
	}
}

void cluster_interest_free(struct cluster *c)
{
	/* what had subscriptions left the table in cluster_interest_close,
	 * and their completions have freed them */
	for (uint32_t i = 0; i < c->table_cap; i++) {
		for (struct interest *x = c->table[i], *nx; x; x = nx) {
			nx = x->next;
			if (!x->subs[0] && !x->subs[1])
				free(x);
		}
	}
	for (struct command *k = c->cmds, *nk; k; k = nk) {
		nk = k->next;
		if (k->in && !k->on && !k->in->subs[0] && !k->in->subs[1])
			free(k->in);
		free(k);
	}
	c->cmds = NULL;
}
