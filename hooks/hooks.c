/*
 * hooks.c - the callback registry, and the publisher's engine-thread side:
 * its start and stop, and the records handed to it. The publisher itself
 * (sockets, thread, rendering) is publisher.c and pub_*.c (pub.h).
 */
#include "hooks/hooks.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hooks/hooks_info.h"
#include "hooks/publisher.h"

struct hooks_cb {
	midge_event_cb cb;
	void *user;
	const uint32_t *want; /* NULL: every event of the type; else the bits */
};

struct hooks_list {
	struct hooks_cb *v;
	size_t n;
	size_t cap;
};

struct hooks_prefix {
	char *p;
	size_t len;
};

struct hooks_pub {
	void *sock;
	uint64_t seq;     /* number of the last event offered to this socket */
	uint64_t dropped; /* events this socket could not take */
	uint64_t recheck_ms; /* event time of the last retry after EAGAIN */
	struct hooks_prefix *prefixes;
	size_t n_prefixes;
	size_t cap_prefixes;
	char endpoint[256];
};

struct hooks {
	struct hooks_list cbs[MIDGE_EV__COUNT];
	void *zctx;
	struct hooks_publisher *pub; /* NULL: publisher off */
	struct hooks_counts past;    /* totals of publishers stopped before */
};

struct hooks *hooks_new(void)
{
	return calloc(1, sizeof(struct hooks));
}

void hooks_free(struct hooks *h)
{
	if (!h)
		return;
	hooks_zmq_stop(h);
	if (h->zctx)
		zmq_ctx_term(h->zctx);
	for (int t = 0; t < MIDGE_EV__COUNT; t++)
		free(h->cbs[t].v);
	free(h);
}

/*
 * Room for one more element in the array v of n used and *cap allocated
 * elements of size elem: doubles *cap (starting at first) when the array
 * is full. Returns the array, moved or not, or NULL when out of memory
 * (v and *cap are then unchanged).
 */
static void *hooks_grow(void *v, size_t n, size_t *cap, size_t elem, size_t first)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : first;
	if (c > SIZE_MAX / elem)
		return NULL;
	void *p = realloc(v, c * elem);
	if (!p)
		return NULL;
	*cap = c;
	return p;
}

/* Registration may allocate (the list grows); dispatch never does. */
int hooks_on_want(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user,
		  const uint32_t *want)
{
	if (!h || !cb || !midge_event_name(type))
		return -1;
	struct hooks_list *l = &h->cbs[type];
	struct hooks_cb *v = hooks_grow(l->v, l->n, &l->cap, sizeof *v, 4);
	if (!v)
		return -1;
	l->v = v;
	l->v[l->n] = (struct hooks_cb){cb, user, want};
	l->n++;
	return 0;
}

int hooks_on(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user)
{
	return hooks_on_want(h, type, cb, user, NULL);
}

uint32_t hooks_types(const struct hooks *h)
{
	if (!h)
		return 0;
	uint32_t types = h->pub ? hooks_publisher_types(h->pub) : 0;
	for (uint32_t t = 1; t < MIDGE_EV__COUNT; t++) {
		const struct hooks_list *l = &h->cbs[t];
		for (size_t i = 0; i < l->n && !(types & (1u << t)); i++)
			if (!l->v[i].want || (*l->v[i].want & (1u << t)))
				types |= 1u << t;
	}
	return types;
}

/* Checks the CurveZMQ server keys: the secret key must be Z85 text of a
 * 32-byte key, and a public key, when given, must be the secret key's. */
static int curve_check(const struct hooks_config *cfg, char *err, size_t errlen)
{
	if (!cfg->curve_secret) {
		if (cfg->curve_public) {
			hooks_set_err(err, errlen,
				"midge_hooks_curve_public_key needs midge_hooks_curve_secret_key");
			return -1;
		}
		return 0;
	}
	if (!zmq_has("curve")) {
		hooks_set_err(err, errlen, "this libzmq has no CurveZMQ support");
		return -1;
	}
	char pub[41];
	if (strlen(cfg->curve_secret) != 40 || zmq_curve_public(pub, cfg->curve_secret) != 0) {
		hooks_set_err(err, errlen, "midge_hooks_curve_secret_key is not a 40-character Z85 key");
		return -1;
	}
	if (cfg->curve_public && strcmp(pub, cfg->curve_public) != 0) {
		hooks_set_err(err, errlen, "midge_hooks_curve_public_key does not belong to "
					   "midge_hooks_curve_secret_key");
		return -1;
	}
	return 0;
}

static void counts_add(struct hooks_counts *to, const struct hooks_counts *c)
{
	to->dropped += c->dropped;
	to->sent += c->sent;
	to->skipped += c->skipped;
	to->rendered += c->rendered;
	to->queued += c->queued;
	to->ignored += c->ignored;
}

void hooks_quiet(struct hooks *h)
{
	if (h && h->pub)
		hooks_publisher_quiet(h->pub);
}

void hooks_zmq_stop(struct hooks *h)
{
	if (!h || !h->pub)
		return;
	struct hooks_counts c;
	hooks_publisher_stop(h->pub);
	/* the thread is joined: its last counts are final */
	hooks_publisher_counts(h->pub, &c);
	counts_add(&h->past, &c);
	hooks_publisher_free(h->pub);
	h->pub = NULL;
}

/*
 * Replaces the publisher with the configured one. An endpoint "none"
 * anywhere (or no endpoint) leaves the publisher off. On failure nothing
 * stays bound. The counters and callbacks survive.
 */
int hooks_zmq_start(struct hooks *h, const struct hooks_config *cfg, char *err, size_t errlen)
{
	if (!h || !cfg || cfg->n_endpoints < 0 || cfg->n_endpoints > HOOKS_MAX_ENDPOINTS ||
	    (cfg->holder.hold && (!cfg->holder.release || !cfg->holder.view))) {
		hooks_set_err(err, errlen, "bad hooks configuration");
		return -1;
	}
	hooks_zmq_stop(h);
	int n = cfg->n_endpoints;
	for (int i = 0; i < n; i++) {
		if (!cfg->endpoints[i] || !*cfg->endpoints[i]) {
			hooks_set_err(err, errlen, "empty hooks endpoint");
			return -1;
		}
		if (strcmp(cfg->endpoints[i], "none") == 0)
			n = 0;
	}
	if (n == 0)
		return 0;
	if (curve_check(cfg, err, errlen) < 0)
		return -1;
	if (!h->zctx) {
		h->zctx = zmq_ctx_new();
		if (!h->zctx) {
			hooks_set_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
			return -1;
		}
		/* hooks_free() waits for unsent events only as long as the
		 * sockets' ZMQ_LINGER says (pub_sock.c). */
		zmq_ctx_set(h->zctx, ZMQ_BLOCKY, 0);
	}
	h->pub = hooks_publisher_start(h->zctx, cfg, err, errlen);
	return h->pub ? 0 : -1;
}

/*
 * Callbacks first, synchronously and in registration order (a callback
 * registered during dispatch is called from the next event on), then the
 * publisher's record.
 */
void hooks_emit(struct hooks *h, const struct midge_event *ev, void *msg)
{
	if (!h || !ev || !midge_event_name(ev->type))
		return;
	const struct hooks_list *l = &h->cbs[ev->type];
	for (size_t i = 0, n = l->n; i < n; i++)
		if (!l->v[i].want || (*l->v[i].want & (1u << ev->type)))
			l->v[i].cb(ev, l->v[i].user);
	if (h->pub)
		hooks_publisher_emit(h->pub, ev, msg);
}

void hooks_flush(struct hooks *h)
{
	if (h && h->pub)
		hooks_publisher_flush(h->pub);
}

void hooks_notes(struct hooks *h, void (*cb)(void *ctx, const char *line), void *ctx)
{
	if (h && h->pub)
		hooks_publisher_notes(h->pub, cb, ctx);
}

/* The counters so far, stopped publishers included. */
static struct hooks_counts hooks_counts_now(const struct hooks *h)
{
	struct hooks_counts c = {0};
	if (!h)
		return c;
	c = h->past;
	if (h->pub) {
		struct hooks_counts now;
		hooks_publisher_counts(h->pub, &now);
		counts_add(&c, &now);
	}
	return c;
}

uint64_t hooks_dropped(const struct hooks *h)
{
	return hooks_counts_now(h).dropped;
}

uint64_t hooks_sent(const struct hooks *h)
{
	return hooks_counts_now(h).sent;
}

struct hooks_counts hooks_counts(const struct hooks *h)
{
	return hooks_counts_now(h);
}

int hooks_endpoint_count(const struct hooks *h)
{
	return h ? hooks_publisher_count(h->pub) : 0;
}

const char *hooks_endpoint(const struct hooks *h, int i)
{
	return h ? hooks_publisher_endpoint(h->pub, i) : NULL;
}

size_t hooks_prefix_count(const struct hooks *h, int i)
{
	return h ? hooks_publisher_prefixes(h->pub, i) : 0;
}

bool hooks_wait_idle(struct hooks *h, int timeout_ms)
{
	return !h || !h->pub || hooks_publisher_idle(h->pub, timeout_ms);
}

void hooks_zmq_version(int *major, int *minor, int *patch)
{
	zmq_version(major, minor, patch);
}
