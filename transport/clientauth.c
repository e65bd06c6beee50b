/*
 * clientauth.c - clients' own rules and credential expiry (clientauth.h):
 * a hash table by client id on the engine thread, one libuv timer per
 * client whose token expires, and the watch that reloads the JWT key file
 * when it changes.
 */
#include "transport/clientauth.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "auth/jwt.h"
#include "auth/pwfile.h"
#include "auth/rules.h"
#include "codec/codec.h"
#include "engine/query.h"
#include "transport/broker.h"
#include "transport/log.h"
#include "transport/security.h"

#define CA_WATCH_MS 1000 /* how often the key file is looked at */

/* The expiry timer: its own allocation, as libuv closes handles later. */
struct ca_timer {
	uv_timer_t t;
	struct midge *m;
	size_t len;
	char cid[];
};

struct ca_entry {
	struct ca_entry *next;      /* in its bucket */
	struct ca_entry *aside;     /* the entry this one replaces, until accepted */
	const struct engine_conn *owner;
	struct rules *rules;
	struct ca_timer *timer;     /* NULL: no expiry */
	uint32_t hv;
	size_t len;
	char cid[];
};

struct clientauth {
	uv_timer_t watch; /* first: the close callback frees the whole */
	struct ca_entry **b;
	size_t nb, n;
};

static uint32_t ca_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 16777619u;
	return h;
}

/* The slot holding cid's entry (or the NULL at its bucket's end). */
static struct ca_entry **ca_slot(struct clientauth *ca, const char *cid, size_t len)
{
	uint32_t hv = ca_hash(cid, len);
	struct ca_entry **p = &ca->b[hv & (ca->nb - 1)];
	while (*p && !((*p)->hv == hv && (*p)->len == len && memcmp((*p)->cid, cid, len) == 0))
		p = &(*p)->next;
	return p;
}

static void ca_timer_closed(uv_handle_t *h)
{
	free(h);
}

/* Frees e and whatever it kept aside. */
static void ca_entry_free(struct ca_entry *e)
{
	while (e) {
		struct ca_entry *aside = e->aside;
		rules_unref(e->rules);
		if (e->timer)
			uv_close((uv_handle_t *)&e->timer->t, ca_timer_closed);
		free(e);
		e = aside;
	}
}

static void ca_grow(struct clientauth *ca)
{
	size_t nb = ca->nb * 2;
	struct ca_entry **b = calloc(nb, sizeof *b);
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < ca->nb; i++)
		for (struct ca_entry *e = ca->b[i], *next; e; e = next) {
			next = e->next;
			e->next = b[e->hv & (nb - 1)];
			b[e->hv & (nb - 1)] = e;
		}
	free(ca->b);
	ca->b = b;
	ca->nb = nb;
}

/* The token's time is up: the client goes (v5: 0xA0). */
static void ca_on_expiry(uv_timer_t *t)
{
	struct ca_timer *ct = (struct ca_timer *)t;
	struct midge *m = ct->m;
	char who[300];
	if (!m->sec || !m->sec->jwt_disconnect)
		return;
	if (engine_client_disconnect(m->engine, ct->cid, ct->len, MQTT_RC_MAX_CONNECT_TIME,
				     "authentication expired", broker_now_ms())) {
		pwfile_printable(ct->cid, ct->len, who, sizeof who);
		log_notice("client '%s' disconnected: its token expired", who);
	}
}

/* The JWT key file changed: a new verifier with the same options. A
 * file that does not load keeps the old keys (and says why). */
static void ca_on_watch(uv_timer_t *t)
{
	struct midge *m = t->data;
	struct security_set *s = m->sec;
	if (!s || !s->jwt || !jwt_verifier_stale(s->jwt))
		return;
	char err[500];
	struct jwt_verifier *v = jwt_verifier_load(jwt_verifier_opts(s->jwt), err, sizeof err);
	if (!v) {
		log_err("JWT key file changed but cannot be used, the old keys stay: %s", err);
		/* not again until it changes again */
		return;
	}
	jwt_verifier_unref(s->jwt);
	s->jwt = v; /* checks running now hold their own reference to the old one */
	jwt_verifier_describe(v, err, sizeof err);
	log_notice("JWT keys reloaded: %s", err);
}

int clientauth_start(struct midge *m)
{
	if (m->clientauth)
		return 0;
	struct clientauth *ca = calloc(1, sizeof *ca);
	if (!ca || !(ca->b = calloc(64, sizeof *ca->b))) {
		free(ca);
		return -1;
	}
	ca->nb = 64;
	uv_timer_init(&m->loop, &ca->watch);
	ca->watch.data = m;
	uv_timer_start(&ca->watch, ca_on_watch, CA_WATCH_MS, CA_WATCH_MS);
	uv_unref((uv_handle_t *)&ca->watch);
	m->clientauth = ca;
	return 0;
}

static void ca_closed(uv_handle_t *h)
{
	struct clientauth *ca = (struct clientauth *)h;
	free(ca->b);
	free(ca);
}

void clientauth_stop(struct midge *m)
{
	struct clientauth *ca = m->clientauth;
	if (!ca)
		return;
	m->clientauth = NULL;
	for (size_t i = 0; i < ca->nb; i++)
		for (struct ca_entry *e = ca->b[i], *next; e; e = next) {
			next = e->next;
			ca_entry_free(e);
		}
	uv_close((uv_handle_t *)&ca->watch, ca_closed);
}

int clientauth_attach(struct midge *m, struct engine_conn *ec, const char *cid, size_t len,
		      struct rules *rules, int64_t exp_s)
{
	struct clientauth *ca = m->clientauth;
	struct ca_entry *e = ca ? malloc(sizeof *e + len) : NULL;
	if (!e) {
		rules_unref(rules);
		return -1;
	}
	memset(e, 0, sizeof *e);
	e->owner = ec;
	e->rules = rules;
	e->hv = ca_hash(cid, len);
	e->len = len;
	memcpy(e->cid, cid, len);
	if (exp_s) {
		struct ca_timer *t = malloc(sizeof *t + len);
		if (!t) {
			ca_entry_free(e);
			return -1;
		}
		t->m = m;
		t->len = len;
		memcpy(t->cid, cid, len);
		uv_timer_init(&m->loop, &t->t);
		int64_t ms = (exp_s + (int64_t)(m->sec && m->sec->jwt
							? jwt_verifier_opts(m->sec->jwt)->leeway_s
							: 0)) * 1000 -
			     (int64_t)broker_now_ms();
		uv_timer_start(&t->t, ca_on_expiry, ms > 0 ? (uint64_t)ms : 0, 0);
		uv_unref((uv_handle_t *)&t->t);
		e->timer = t;
	}
	struct ca_entry **slot = ca_slot(ca, cid, len);
	if (*slot) {
		/* another connection's (a takeover): aside until accepted */
		struct ca_entry *old = *slot;
		e->next = old->next;
		old->next = NULL;
		e->aside = old;
		*slot = e;
		return 0;
	}
	*slot = e;
	if (++ca->n > ca->nb)
		ca_grow(ca);
	return 0;
}

void clientauth_refused(struct midge *m, struct engine_conn *ec, const char *cid, size_t len)
{
	struct clientauth *ca = m->clientauth;
	if (!ca)
		return;
	struct ca_entry **slot = ca_slot(ca, cid, len), *e = *slot;
	if (!e || e->owner != ec)
		return;
	struct ca_entry *aside = e->aside;
	e->aside = NULL;
	if (aside) {
		aside->next = e->next;
		*slot = aside;
	} else {
		*slot = e->next;
		ca->n--;
	}
	ca_entry_free(e);
}

/* Removes the entry in slot (and what it kept aside). */
static void ca_remove(struct clientauth *ca, struct ca_entry **slot)
{
	struct ca_entry *e = *slot;
	*slot = e->next;
	ca->n--;
	ca_entry_free(e);
}

void clientauth_on_event(struct midge *m, const struct midge_event *ev)
{
	struct clientauth *ca = m->clientauth;
	if (!ca || !ca->n || !ev->client ||
	    (ev->type != MIDGE_EV_CONNECT && ev->type != MIDGE_EV_DISCONNECT))
		return;
	const struct midge_client *cl = ev->client;
	struct ca_entry **slot = ca_slot(ca, cl->client_id.p ? cl->client_id.p : "",
					 cl->client_id.len);
	struct ca_entry *e = *slot;
	if (!e)
		return;
	/* both events carry the connection's own record */
	const struct engine_conn *ec = engine_conn_of(cl);
	if (ev->type == MIDGE_EV_DISCONNECT) {
		if (e->owner == ec)
			ca_remove(ca, slot);
		return;
	}
	if (e->owner != ec) {
		/* accepted without rules over a client that had some */
		ca_remove(ca, slot);
	} else {
		ca_entry_free(e->aside); /* the old connection is being taken over */
		e->aside = NULL;
	}
}

int clientauth_acl(struct midge *m, const struct midge_client *cl, const uint8_t *topic,
		   size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	struct clientauth *ca = m->clientauth;
	if (!ca || !ca->n)
		return -1;
	struct ca_entry *e = *ca_slot(ca, cl->client_id.p ? cl->client_id.p : "", cl->client_id.len);
	if (!e)
		return -1;
	if (access == ENGINE_ACCESS_RECEIVE)
		return e->rules ? 0 : -1;
	/* publish and subscribe come with the connection's own record; while
	 * a takeover waits for its decision the old connection's entry is
	 * the one aside */
	const struct engine_conn *ec = engine_conn_of(cl);
	if (e->owner != ec && e->aside && e->aside->owner == ec)
		e = e->aside;
	if (!e->rules)
		return -1;
	/* substituted when the token was read: no client to give */
	enum rules_access a = access == ENGINE_ACCESS_PUBLISH ? RULES_PUBLISH : RULES_SUBSCRIBE;
	return rules_check(e->rules, NULL, topic, len, a, qos, retain) ? 0 : MQTT_RC_NOT_AUTHORIZED;
}

size_t clientauth_count(const struct midge *m)
{
	return m->clientauth ? m->clientauth->n : 0;
}
