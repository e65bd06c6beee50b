/*
 * hold.c - acknowledgements that wait for the store: a PUBACK or PUBREC
 * means the message is on disk, a SUBACK the subscription, a PUBREL or
 * PUBCOMP the end of the QoS 2 state it removes, a CONNACK the session it
 * creates or the stored one it discards (connect.c; nothing is delivered
 * or read before it, c->connack_held). After a packet whose
 * handling reported changes to the store, its acknowledgement is held
 * with the store's ticket (engine_store.ticket) until the store calls
 * engine_store_durable() with that ticket or a later one.
 *
 * Per connection, held acknowledgements form one FIFO: once one waits,
 * every later acknowledgement on that connection queues behind it even if
 * it needs no wait, so PUBACKs, PUBRECs and PUBRELs keep the order the
 * specification requires (4.6). Deliveries (PUBLISH) do not wait: they do
 * not acknowledge anything, and SUBACK may follow the first messages of
 * its subscription (3.8.4).
 *
 * A connection holding as many acknowledgements as its receive maximum is
 * read no more (engine_conn_input returns ENGINE_CONN_HELD) until enough of
 * them went out (engine_io.resume): a 3.1.1 client, which has no receive
 * maximum, cannot make the FIFO grow without bound. All connections
 * together are bounded too (max_acks_held, midge_persist_max_acks_held):
 * once that many wait, a connection that holds one is not read past the
 * packet it is on, so the broker stops reading its publishers (they wait
 * in their TCP buffers) while subscribers, which hold nothing, go on. A
 * connection that holds none may still bring one more: at most one per
 * connection past the bound. Nothing acknowledged is ever dropped for it.
 *
 * The cluster adds a second ticket of its own (engine_cluster_sent()): the
 * PUBACK or PUBREC of a message forwarded to other nodes also waits until
 * NATS confirmed it has the message (docs/cluster.md); an entry goes out
 * once both tickets are reached.
 *
 * Bridges hold their acknowledgements towards the remote the same way,
 * in a FIFO of their own (bridge.c, engine_bridge_answer()), released
 * here with the connections'.
 *
 * Also engine_store_failing(): while the store cannot write, what would
 * need it is refused (publish.c, connect.c).
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

struct held_ack {
	uint64_t ticket;
	uint64_t cticket; /* the cluster's, 0 = none */
	uint8_t *bytes; /* an encoded packet (SUBACK, UNSUBACK), else NULL */
	const char *why; /* static text */
	uint32_t len;
	uint16_t pid;
	uint8_t type;
	uint8_t rc;
};

/* Out of line: only connections that ever held an acknowledgement have one. */
struct held_acks {
	struct held_acks *prev, *next; /* engine.holding while n > 0 */
	struct engine_conn *c;
	struct held_ack *ring;
	uint32_t cap, head, n;
	uint32_t n_quota;  /* held PUBACKs and PUBCOMPs: they count against receive maximum */
	bool linked;
	bool input_held;   /* engine_conn_input stopped for hold_full() */
};

uint64_t hold_ticket(struct engine *e, uint64_t before, bool conservative)
{
	if (!conservative && e->store_changes == before)
		return 0;
	uint64_t t = e->store.ticket(e->store.ctx);
	return t > e->durable ? t : 0;
}

static bool hold_is_quota(uint8_t type)
{
	return type == CODEC_PUBACK || type == CODEC_PUBCOMP;
}

static void hold_link(struct engine *e, struct held_acks *h)
{
	if (h->linked)
		return;
	h->linked = true;
	h->prev = NULL;
	h->next = e->holding;
	if (e->holding)
		e->holding->prev = h;
	e->holding = h;
}

static void hold_unlink(struct engine *e, struct held_acks *h)
{
	if (!h->linked)
		return;
	h->linked = false;
	if (h->prev)
		h->prev->next = h->next;
	else
		e->holding = h->next;
	if (h->next)
		h->next->prev = h->prev;
}

/* A free entry at the tail of c's FIFO, or NULL on OOM. */
static struct held_ack *hold_push(struct engine *e, struct engine_conn *c)
{
	struct held_acks *h = c->acks;
	if (!h) {
		h = calloc(1, sizeof *h);
		if (!h)
			return NULL;
		h->c = c;
		c->acks = h;
	}
	if (h->n == h->cap &&
	    ring_regrow(&h->ring, sizeof *h->ring, &h->cap, &h->head, h->n, h->cap ? h->cap * 2 : 16) < 0)
		return NULL;
	struct held_ack *a = &h->ring[(h->head + h->n) % h->cap];
	memset(a, 0, sizeof *a);
	h->n++;
	e->st.acks_held++;
	hold_link(e, h);
	return a;
}

/* Whether an acknowledgement with these tickets can go out now. */
static bool hold_now(const struct engine_conn *c, uint64_t ticket, uint64_t cticket)
{
	return !ticket && !cticket && (!c->acks || !c->acks->n);
}

void hold_ack(struct engine *e, struct engine_conn *c, uint64_t ticket, uint8_t type, uint16_t pid,
	      uint8_t rc, const char *why)
{
	hold_ack_cluster(e, c, ticket, 0, type, pid, rc, why);
}

void hold_ack_cluster(struct engine *e, struct engine_conn *c, uint64_t ticket, uint64_t cticket,
		      uint8_t type, uint16_t pid, uint8_t rc, const char *why)
{
	if (cticket <= e->cluster_sent)
		cticket = 0;
	if (hold_now(c, ticket, cticket)) {
		output_ack(e, c, type, pid, rc, why);
		return;
	}
	struct held_ack *a = hold_push(e, c);
	if (!a) { /* never acknowledged before it is durable: the client will resend */
		client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
		return;
	}
	a->ticket = ticket;
	a->cticket = cticket;
	a->type = type;
	a->pid = pid;
	a->rc = rc;
	a->why = why;
	if (hold_is_quota(type))
		c->acks->n_quota++;
}

void hold_packet(struct engine *e, struct engine_conn *c, uint64_t ticket, struct codec_packet *p,
		 struct codec_props *props)
{
	if (hold_now(c, ticket, 0)) {
		output_packet(e, c, p, props);
		return;
	}
	size_t n = output_encode(e, c, p, props);
	if (!n)
		return; /* not sendable (larger than the client accepts): as output_packet */
	uint8_t *b = malloc(n);
	struct held_ack *a = b ? hold_push(e, c) : NULL;
	if (!a) {
		free(b);
		client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
		return;
	}
	memcpy(b, e->scratch, n);
	a->ticket = ticket;
	a->bytes = b;
	a->len = (uint32_t)n;
	a->type = p->type;
}

/* Whether all connections together hold max_acks_held. */
static bool hold_global_full(const struct engine *e)
{
	return e->cfg.max_acks_held && e->st.acks_held >= e->cfg.max_acks_held;
}

bool hold_full(const struct engine_conn *c)
{
	if (c->connack_held)
		return true;
	if (!c->acks || !c->acks->n)
		return false;
	uint32_t max = c->receive_max > 16 ? c->receive_max : 16;
	return c->acks->n >= max || hold_global_full(c->e);
}

uint32_t hold_count(const struct engine_conn *c)
{
	return c->acks ? c->acks->n_quota : 0;
}

/* Sends (or, on a closing connection, drops) the oldest held entry. */
static void hold_release_one(struct engine *e, struct held_acks *h)
{
	struct held_ack a = h->ring[h->head];
	struct engine_conn *c = h->c;
	h->head = (h->head + 1) % h->cap;
	h->n--;
	e->st.acks_held--;
	if (hold_is_quota(a.type))
		h->n_quota--;
	if (a.type == CODEC_CONNACK)
		c->connack_held = false;
	if (c->state == CONN_UP) {
		if (a.bytes)
			client_write(e, c, a.bytes, a.len, NULL, false);
		else
			output_ack(e, c, a.type, a.pid, a.rc, a.why);
	}
	free(a.bytes);
	/* the CONNACK went first [MQTT-3.2.0-1]: now the window is resent
	 * (a resumed session) and what was queued meanwhile goes */
	if (a.type == CODEC_CONNACK && c->state == CONN_UP && c->s) {
		if (c->connack_resend)
			session_resend(e, c->s);
		else
			session_drain(e, c->s);
	}
}

void hold_free(struct engine *e, struct engine_conn *c)
{
	struct held_acks *h = c->acks;
	if (!h)
		return;
	while (h->n) {
		free(h->ring[h->head].bytes);
		h->head = (h->head + 1) % h->cap;
		h->n--;
		e->st.acks_held--;
	}
	hold_unlink(e, h);
	free(h->ring);
	free(h);
	c->acks = NULL;
}

/* Sends what both tickets reached allow, in each connection's order. */
static void hold_release(struct engine *e)
{
	struct held_acks *h, *next;
	bridge_release_answers(e);
	for (h = e->holding; h; h = h->next)
		while (h->n && h->ring[h->head].ticket <= e->durable &&
		       h->ring[h->head].cticket <= e->cluster_sent)
			hold_release_one(e, h);
	/* then, with the global count down, who may be read again */
	for (h = e->holding; h; h = next) {
		next = h->next;
		if (h->input_held && !hold_full(h->c) && h->c->state == CONN_UP) {
			h->input_held = false;
			if (e->io.resume)
				e->io.resume(e->io.ctx, h->c->handle);
		}
		if (!h->n)
			hold_unlink(e, h);
	}
}

void engine_store_durable(struct engine *e, uint64_t ticket, uint64_t now_ms)
{
	e->now = now_ms;
	if (ticket > e->durable)
		e->durable = ticket;
	hold_release(e);
}

void engine_cluster_sent(struct engine *e, uint64_t ticket, uint64_t now_ms)
{
	e->now = now_ms;
	if (ticket > e->cluster_sent)
		e->cluster_sent = ticket;
	hold_release(e);
}

int ring_regrow(void *ring, size_t esize, uint32_t *cap, uint32_t *head, uint32_t n,
		uint32_t ncap)
{
	uint8_t *old = *(uint8_t **)ring;
	uint8_t *v = malloc((size_t)ncap * esize);
	if (!v)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		memcpy(v + (size_t)i * esize, old + (size_t)((*head + i) % *cap) * esize, esize);
	free(old);
	*(uint8_t **)ring = v;
	*cap = ncap;
	*head = 0;
	return 0;
}

void engine_store_failing(struct engine *e, bool failing, const char *why)
{
	e->store_failing = failing ? (why ? why : "the store cannot write") : NULL;
}

/* engine_conn_input is about to stop reading c for hold_full(). */
void hold_stop_input(struct engine_conn *c)
{
	struct held_acks *h = c->acks;
	if (!h || h->input_held)
		return;
	h->input_held = true;
	uint32_t max = c->receive_max > 16 ? c->receive_max : 16;
	if (!c->connack_held && h->n < max)
		c->e->st.acks_held_pauses++; /* for the global bound */
}
