/*
 * hooks.c - the callback registry and the ZeroMQ publisher. The only file
 * of midge that includes <zmq.h>.
 *
 * Each configured endpoint is one XPUB socket with its own sequence
 * numbers, drop counter and the set of prefixes its subscribers asked for.
 * An event is rendered at most once, and only when some socket has a
 * subscriber whose prefix matches "<name>" or "<name>/<topic>".
 *
 * Sending never blocks: ZMQ_XPUB_NODROP makes a send to a subscriber whose
 * queue is at the high-water mark fail with EAGAIN (instead of ZeroMQ
 * silently discarding it), and ZMQ_DONTWAIT turns that into an immediate
 * return, which we count as a drop.
 */
#include "hooks/hooks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hooks/hooks_info.h"
#include "hooks/render.h"

struct hooks_cb {
	midge_event_cb cb;
	void *user;
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
	struct hooks_pub pubs[HOOKS_MAX_ENDPOINTS];
	int n_pubs;
	char *node;
	struct hooks_buf json; /* reused for every event */
	struct hooks_buf key;  /* the name frame: "<name>" or "<name>/<topic>" */
	uint64_t dropped;      /* totals, kept across hooks_zmq_start() */
	uint64_t sent;
	uint64_t skipped;
	uint64_t rendered;
	bool touched; /* a ZeroMQ call since hooks_process() (see hooks.h) */
};

struct hooks *hooks_new(void)
{
	return calloc(1, sizeof(struct hooks));
}

static void pub_close(struct hooks_pub *pub)
{
	if (pub->sock)
		zmq_close(pub->sock);
	for (size_t i = 0; i < pub->n_prefixes; i++)
		free(pub->prefixes[i].p);
	free(pub->prefixes);
	memset(pub, 0, sizeof *pub);
}

static void pubs_close(struct hooks *h)
{
	for (int i = 0; i < h->n_pubs; i++)
		pub_close(&h->pubs[i]);
	h->n_pubs = 0;
}

void hooks_free(struct hooks *h)
{
	if (!h)
		return;
	pubs_close(h);
	if (h->zctx)
		zmq_ctx_term(h->zctx);
	for (int t = 0; t < MIDGE_EV__COUNT; t++)
		free(h->cbs[t].v);
	free(h->node);
	hooks_buf_release(&h->json);
	hooks_buf_release(&h->key);
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
int hooks_on(struct hooks *h, enum midge_event_type type, midge_event_cb cb, void *user)
{
	if (!h || !cb || !midge_event_name(type))
		return -1;
	struct hooks_list *l = &h->cbs[type];
	struct hooks_cb *v = hooks_grow(l->v, l->n, &l->cap, sizeof *v, 4);
	if (!v)
		return -1;
	l->v = v;
	l->v[l->n].cb = cb;
	l->v[l->n].user = user;
	l->n++;
	return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Checks the CurveZMQ server keys: the secret key must be Z85 text of a
 * 32-byte key, and a public key, when given, must be the secret key's. */
static int curve_check(const struct hooks_config *cfg, char *err, size_t errlen)
{
	if (!cfg->curve_secret) {
		if (cfg->curve_public) {
			set_err(err, errlen,
				"midge_hooks_curve_public_key needs midge_hooks_curve_secret_key");
			return -1;
		}
		return 0;
	}
	if (!zmq_has("curve")) {
		set_err(err, errlen, "this libzmq has no CurveZMQ support");
		return -1;
	}
	char pub[41];
	if (strlen(cfg->curve_secret) != 40 || zmq_curve_public(pub, cfg->curve_secret) != 0) {
		set_err(err, errlen, "midge_hooks_curve_secret_key is not a 40-character Z85 key");
		return -1;
	}
	if (cfg->curve_public && strcmp(pub, cfg->curve_public) != 0) {
		set_err(
		    err, errlen,
		    "midge_hooks_curve_public_key does not belong to midge_hooks_curve_secret_key");
		return -1;
	}
	return 0;
}

static int pub_open(struct hooks *h, struct hooks_pub *pub, const char *endpoint,
		    const struct hooks_config *cfg, char *err, size_t errlen)
{
	int hwm = cfg->sndhwm > 0 ? cfg->sndhwm : HOOKS_DEFAULT_SNDHWM;
	int zero = 0, one = 1;
	pub->sock = zmq_socket(h->zctx, ZMQ_XPUB);
	if (!pub->sock)
		goto fail;
	if (zmq_setsockopt(pub->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
	    zmq_setsockopt(pub->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
	    zmq_setsockopt(pub->sock, ZMQ_XPUB_NODROP, &one, sizeof one) != 0)
		goto fail;
	if (cfg->curve_secret &&
	    (zmq_setsockopt(pub->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	     zmq_setsockopt(pub->sock, ZMQ_CURVE_SECRETKEY, cfg->curve_secret,
			    strlen(cfg->curve_secret) + 1) != 0))
		goto fail;
	if (zmq_bind(pub->sock, endpoint) != 0)
		goto fail;
	size_t len = sizeof pub->endpoint;
	if (zmq_getsockopt(pub->sock, ZMQ_LAST_ENDPOINT, pub->endpoint, &len) != 0)
		snprintf(pub->endpoint, sizeof pub->endpoint, "%s", endpoint);
	return 0;
fail:
	set_err(err, errlen, "hooks endpoint %s: %s", endpoint, zmq_strerror(zmq_errno()));
	pub_close(pub);
	return -1;
}

/*
 * Replaces the sockets with the configured ones. An endpoint "none"
 * anywhere (or no endpoint) leaves the publisher off. On failure nothing
 * stays bound. The counters and callbacks survive.
 */
int hooks_zmq_start(struct hooks *h, const struct hooks_config *cfg, char *err, size_t errlen)
{
	if (!h || !cfg || cfg->n_endpoints < 0 || cfg->n_endpoints > HOOKS_MAX_ENDPOINTS) {
		set_err(err, errlen, "bad hooks configuration");
		return -1;
	}
	pubs_close(h);
	free(h->node);
	h->node = NULL;
	if (cfg->node && !(h->node = strdup(cfg->node))) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	int n = cfg->n_endpoints;
	for (int i = 0; i < n; i++) {
		if (!cfg->endpoints[i] || !*cfg->endpoints[i]) {
			set_err(err, errlen, "empty hooks endpoint");
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
			set_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
			return -1;
		}
		/* hooks_free() must not wait for unsent events. */
		zmq_ctx_set(h->zctx, ZMQ_BLOCKY, 0);
	}
	for (int i = 0; i < n; i++) {
		if (pub_open(h, &h->pubs[i], cfg->endpoints[i], cfg, err, errlen) < 0) {
			pubs_close(h);
			return -1;
		}
		h->n_pubs = i + 1;
	}
	return 0;
}

static int prefix_add(struct hooks_pub *pub, const char *p, size_t len)
{
	for (size_t i = 0; i < pub->n_prefixes; i++)
		if (pub->prefixes[i].len == len && memcmp(pub->prefixes[i].p, p, len) == 0)
			return 0;
	struct hooks_prefix *v = hooks_grow(pub->prefixes, pub->n_prefixes, &pub->cap_prefixes, sizeof *v, 8);
	if (!v)
		return -1;
	pub->prefixes = v;
	char *copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, p, len);
	copy[len] = '\0';
	pub->prefixes[pub->n_prefixes].p = copy;
	pub->prefixes[pub->n_prefixes].len = len;
	pub->n_prefixes++;
	return 0;
}

static void prefix_remove(struct hooks_pub *pub, const char *p, size_t len)
{
	for (size_t i = 0; i < pub->n_prefixes; i++) {
		if (pub->prefixes[i].len == len && memcmp(pub->prefixes[i].p, p, len) == 0) {
			free(pub->prefixes[i].p);
			pub->prefixes[i] = pub->prefixes[--pub->n_prefixes];
			return;
		}
	}
}

/*
 * Reads every pending subscription message without blocking. Without
 * ZMQ_XPUB_VERBOSE, XPUB reports a prefix when its first subscriber
 * subscribes and again (as an unsubscription) when its last one leaves or
 * disconnects, so the set mirrors what the subscribers want. If a prefix
 * cannot be stored (out of memory) the empty prefix stands in for it:
 * rendering too much is safe, rendering too little loses events.
 */
static void pub_drain(struct hooks_pub *pub)
{
	zmq_msg_t m;
	for (;;) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, pub->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		const char *d = zmq_msg_data(&m);
		size_t n = zmq_msg_size(&m);
		if (n >= 1 && d[0] == 1) {
			if (prefix_add(pub, d + 1, n - 1) < 0)
				prefix_add(pub, "", 0);
		} else if (n >= 1 && d[0] == 0) {
			prefix_remove(pub, d + 1, n - 1);
		}
		zmq_msg_close(&m);
	}
}

int hooks_fd(const struct hooks *h, int i)
{
	int fd = -1;
	size_t len = sizeof(fd);
	if (!h || i < 0 || i >= h->n_pubs || zmq_getsockopt(h->pubs[i].sock, ZMQ_FD, &fd, &len) != 0)
		return -1;
	return fd;
}

/* ZMQ_FD is edge-triggered: after reading, ask ZMQ_EVENTS again, and go
 * on until it says nothing is ready, or a change arriving meanwhile
 * would wait for the next edge. */
void hooks_process(struct hooks *h)
{
	if (!h)
		return;
	h->touched = false;
	for (int i = 0; i < h->n_pubs; i++) {
		for (;;) {
			int ev = 0;
			size_t len = sizeof(ev);
			if (zmq_getsockopt(h->pubs[i].sock, ZMQ_EVENTS, &ev, &len) != 0 ||
			    !(ev & ZMQ_POLLIN))
				break;
			pub_drain(&h->pubs[i]);
		}
	}
}

bool hooks_touched(const struct hooks *h)
{
	return h && h->touched;
}

void hooks_poll(struct hooks *h)
{
	hooks_process(h);
}

/* Does some prefix of the socket match "<name>" (no topic) or
 * "<name>/<topic>"? The key is never built for this test. */
static bool pub_wants(const struct hooks_pub *pub, const char *name, size_t nlen,
		      const struct midge_str *topic)
{
	for (size_t i = 0; i < pub->n_prefixes; i++) {
		const char *p = pub->prefixes[i].p;
		size_t plen = pub->prefixes[i].len;
		if (plen <= nlen) {
			if (memcmp(p, name, plen) == 0)
				return true;
			continue;
		}
		if (!topic || memcmp(p, name, nlen) != 0 || p[nlen] != '/')
			continue;
		size_t rest = plen - nlen - 1;
		if (rest <= topic->len && memcmp(p + nlen + 1, topic->p, rest) == 0)
			return true;
	}
	return false;
}

static int key_build(struct hooks_buf *key, const char *name, size_t nlen,
		     const struct midge_str *topic)
{
	size_t tlen = topic ? topic->len : 0;
	key->len = 0;
	if (hooks_buf_reserve(key, nlen + 1 + tlen) < 0)
		return -1;
	memcpy(key->p, name, nlen);
	key->len = nlen;
	if (topic) {
		key->p[key->len++] = '/';
		if (tlen)
			memcpy(key->p + key->len, topic->p, tlen);
		key->len += tlen;
	}
	return 0;
}

/* The JSON sent when rendering failed (out of memory) after the name
 * frame had gone out: a multipart message cannot be taken back. */
static size_t render_fallback(char *out, size_t cap, uint64_t seq, uint64_t dropped,
			      const char *name)
{
	int n = snprintf(out, cap,
			 "{\"schema\":%d,\"seq\":%llu,\"dropped\":%llu,\"event\":\"%s\","
			 "\"error\":\"out of memory\"}",
			 MIDGE_EVENT_SCHEMA, (unsigned long long)seq, (unsigned long long)dropped,
			 name);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/*
 * Sends the name frame, the one that meets the high-water mark. zmq_send
 * reads ZeroMQ's commands only now and then, so a subscriber that has just
 * drained its queue may not be known yet: on EAGAIN, ZMQ_EVENTS reads
 * them and the send is tried once more (only when a drop is due anyway,
 * and once per millisecond at most).
 */
static int pub_send_name(struct hooks_pub *pub, const char *p, size_t len, uint64_t now_ms)
{
	int ev = 0;
	size_t evlen = sizeof(ev);
	if (zmq_send(pub->sock, p, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
		return 0;
	/* At most once per millisecond of event time: a subscriber that stays
	 * stuck must not cost a system call per event. */
	if (zmq_errno() != EAGAIN || now_ms == pub->recheck_ms)
		return -1;
	pub->recheck_ms = now_ms;
	if (zmq_getsockopt(pub->sock, ZMQ_EVENTS, &ev, &evlen) != 0)
		return -1;
	return zmq_send(pub->sock, p, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 ? 0 : -1;
}

/*
 * Callbacks first (in registration order; a callback registered during
 * dispatch is called from the next event on), then every socket. Each
 * socket numbers every event offered to it, so a consumer that takes
 * everything sees a gap exactly when an event was dropped.
 *
 * The name frame goes first, before the JSON is rendered: it is the only
 * frame that can meet the high-water mark (ZeroMQ counts a multipart
 * message once, when it is complete, so once the first frame is accepted
 * the others are too), and a full socket then costs no rendering.
 */
void hooks_emit(struct hooks *h, const struct midge_event *ev)
{
	if (!h || !ev)
		return;
	const char *name = midge_event_name(ev->type);
	if (!name)
		return;
	const struct hooks_list *l = &h->cbs[ev->type];
	for (size_t i = 0, n = l->n; i < n; i++)
		l->v[i].cb(ev, l->v[i].user);
	if (h->n_pubs == 0)
		return;

	/* The prefixes are current: the loop reads subscription changes as
	 * soon as ZeroMQ signals them (hooks_process), so nothing is read
	 * here, per event. */
	size_t nlen = strlen(name);
	bool has_msg = hooks_event_has_message(ev->type);
	const struct midge_message *msg = has_msg ? ev->u.message.msg : NULL;
	const struct midge_str *topic = msg ? &msg->topic : NULL;
	bool wanted = false;
	int keyed = 0;    /* name frame built: 0 not yet, 1 done, -1 failed */
	int rendered = 0; /* JSON body: 0 not yet, 1 done, -1 failed */
	for (int i = 0; i < h->n_pubs; i++) {
		struct hooks_pub *pub = &h->pubs[i];
		uint64_t seq = ++pub->seq;
		if (!pub_wants(pub, name, nlen, topic))
			continue;
		wanted = true;
		h->touched = true;
		if (keyed == 0)
			keyed = key_build(&h->key, name, nlen, topic) == 0 ? 1 : -1;
		if (keyed < 0 || pub_send_name(pub, h->key.p, h->key.len, ev->time_ms) < 0) {
			pub->dropped++;
			h->dropped++;
			continue;
		}
		if (rendered == 0) {
			rendered = hooks_render_body(&h->json, ev, h->node) == 0 ? 1 : -1;
			if (rendered > 0)
				h->rendered++;
		}
		const char *json;
		size_t json_len;
		char fallback[256];
		if (rendered > 0) {
			size_t off = hooks_render_head(&h->json, seq, pub->dropped);
			json = h->json.p + off;
			json_len = h->json.len - off;
		} else {
			json = fallback;
			json_len =
			    render_fallback(fallback, sizeof fallback, seq, pub->dropped, name);
		}
		int more = has_msg ? ZMQ_SNDMORE : 0;
		if (zmq_send(pub->sock, json, json_len, ZMQ_DONTWAIT | more) < 0 ||
		    (has_msg && zmq_send(pub->sock, msg && msg->payload_len ? msg->payload : "",
					 msg ? msg->payload_len : 0, ZMQ_DONTWAIT) < 0)) {
			/* Cannot happen after the first frame went out (see above). */
			pub->dropped++;
			h->dropped++;
			continue;
		}
		h->sent++;
	}
	if (!wanted)
		h->skipped++;
}

uint64_t hooks_dropped(const struct hooks *h)
{
	return h ? h->dropped : 0;
}

uint64_t hooks_sent(const struct hooks *h)
{
	return h ? h->sent : 0;
}

int hooks_endpoint_count(const struct hooks *h)
{
	return h ? h->n_pubs : 0;
}

const char *hooks_endpoint(const struct hooks *h, int i)
{
	if (!h || i < 0 || i >= h->n_pubs)
		return NULL;
	return h->pubs[i].endpoint;
}

size_t hooks_prefix_count(const struct hooks *h, int i)
{
	if (!h || i < 0 || i >= h->n_pubs)
		return 0;
	return h->pubs[i].n_prefixes;
}

uint64_t hooks_skipped(const struct hooks *h)
{
	return h ? h->skipped : 0;
}

uint64_t hooks_rendered(const struct hooks *h)
{
	return h ? h->rendered : 0;
}

void hooks_zmq_version(int *major, int *minor, int *patch)
{
	zmq_version(major, minor, patch);
}
