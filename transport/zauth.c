/*
 * zauth.c - auth workers on the engine thread (zauth.h).
 *
 * Four tables, all on the engine thread and all bounded:
 *   - pending requests, by id (the answer's key) and by engine connection
 *     (connect_cancel's), at most midge_auth_worker_queue;
 *   - the decision cache, by SHA-256 of what the decision depends on
 *     (listener, client id, user name, password, TLS and its client
 *     certificate's fingerprint), at most
 *     midge_auth_cache_size, oldest first out, each for
 *     midge_auth_cache_ttl seconds; it keeps no password, only the digest;
 *   - the worker of each enhanced-authentication exchange between its
 *     steps (affinity: the method's state lives in that worker), by
 *     engine connection, one entry per connection at most, dropped when
 *     the exchange ends or the connection goes;
 *   - the rules of clients a worker gave rules, by client id: their own
 *     room, zauth_rules.c.
 */
#include "transport/zauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <uv.h>

#include "auth/chain.h"
#include "auth/pwfile.h"
#include "auth/zproto.h"
#include "auth/rules.h"
#include "auth/zworker.h"
#include "codec/codec.h"
#include "engine/query.h"
#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/zauth_internal.h"

bool zauth_on(const struct midge *m)
{
	return m->conf.zauth.endpoint != NULL;
}

/* ------------------------------------------------------------ cache */

/* SHA-256 of what a decision depends on, length-prefixed. */
static void zauth_cache_key(const struct midge_client *cl, const struct midge_str *user,
			    const struct midge_str *pass, const struct conn *c, uint8_t out[32])
{
	gnutls_hash_hd_t h;
	uint8_t hdr[4] = {(uint8_t)(cl->listener >> 8), (uint8_t)cl->listener, cl->tls, cl->protocol};
	memset(out, 0, 32);
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		return;
	gnutls_hash(h, hdr, sizeof hdr);
	/* another certificate is another client: the workers see its
	 * subject and fingerprint ("subject\0fingerprint", both hashed: a
	 * certificate a PROXY header vouched for has a subject alone) */
	struct midge_str fp = {NULL, 0};
	if (c && c->tls_cert) {
		size_t sl = strlen(c->tls_cert);
		fp.p = c->tls_cert;
		fp.len = sl + 1 + strlen(c->tls_cert + sl + 1);
	}
	const struct midge_str *parts[4] = {&cl->client_id, user, pass, &fp};
	for (int i = 0; i < 4; i++) {
		uint64_t n = parts[i]->p ? parts[i]->len + 1 : 0; /* absent differs from empty */
		gnutls_hash(h, &n, sizeof n);
		if (parts[i]->p)
			gnutls_hash(h, parts[i]->p, parts[i]->len);
	}
	gnutls_hash_deinit(h, out);
}

static void zauth_cache_unlink(struct zauth *z, struct zcached *e)
{
	struct zcached **pp = &z->cache[zauth_hash(e->key, 32) % ZAUTH_BUCKETS];
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	zproto_answer_clear(&e->a);
	free(e);
	z->n_cached--;
}

/* Drops the oldest entry (the FIFO's head). */
static void zauth_cache_evict(struct zauth *z)
{
	struct zcached *e = z->fifo_head;
	if (!e)
		return;
	z->fifo_head = e->fifo_next;
	if (!z->fifo_head)
		z->fifo_tail = NULL;
	zauth_cache_unlink(z, e);
}

static const struct zcached *zauth_cache_find(struct zauth *z, const uint8_t key[32])
{
	uint64_t now = broker_now_ms();
	/* expired entries leave from the head: every entry lives as long */
	while (z->fifo_head && z->fifo_head->expires_ms <= now)
		zauth_cache_evict(z);
	for (struct zcached *e = z->cache[zauth_hash(key, 32) % ZAUTH_BUCKETS]; e; e = e->next)
		if (memcmp(e->key, key, 32) == 0)
			return e;
	return NULL;
}

/* Remembers answer a for key (its parts are shared or copied). */
static void zauth_cache_put(struct zauth *z, const uint8_t key[32], const struct zproto_answer *a)
{
	const struct conf *c = &z->m->conf;
	if (!c->zauth.cache_ttl || a->no_cache || zauth_cache_find(z, key))
		return;
	while (z->n_cached >= c->zauth.cache_size)
		zauth_cache_evict(z);
	struct zcached *e = calloc(1, sizeof *e);
	if (!e)
		return;
	memcpy(e->key, key, 32);
	e->expires_ms = broker_now_ms() + (uint64_t)c->zauth.cache_ttl * 1000u;
	e->a = *a;
	e->a.rules = rules_ref(a->rules);
	e->a.username = a->username ? strdup(a->username) : NULL;
	if (a->username && !e->a.username) {
		rules_unref(e->a.rules);
		free(e);
		return;
	}
	uint32_t b = zauth_hash(key, 32) % ZAUTH_BUCKETS;
	e->next = z->cache[b];
	z->cache[b] = e;
	if (z->fifo_tail)
		z->fifo_tail->fifo_next = e;
	else
		z->fifo_head = e;
	z->fifo_tail = e;
	z->n_cached++;
}

/* ------------------------------------------------------------ decisions */

/* The rules of ec's session from now on (NULL and !ask: none; ask:
 * `acl` requests decide), kept under the client id the session will
 * have. 0 or -1 (out of memory). */
static int zauth_rules_set(struct zauth *z, struct engine_conn *ec, struct conn *c,
			   struct rules *rules, uint8_t ask)
{
	const struct midge_client *cl = engine_conn_client(ec);
	/* use_username_as_clientid: the session will be the user name's */
	const struct midge_str *cid =
		c && c->listener && c->listener->username_as_clientid && cl->username.p ? &cl->username
											  : &cl->client_id;
	return zauth_client_set(z, cid->p ? cid->p : "", cid->p ? cid->len : 0, rules, ask);
}

/*
 * Applies an allowing answer to the held (or being decided) CONNECT of
 * ec: the user name, the session expiry cap, the rules (kept under the
 * client id the session will have). Returns 0 or a reason code.
 */
static int zauth_apply(struct zauth *z, struct engine_conn *ec, struct conn *c,
		       const struct zproto_answer *a)
{
	if (!a->allow)
		return a->reason_code ? a->reason_code : MQTT_RC_NOT_AUTHORIZED;
	if (a->username && engine_conn_set_identity(ec, a->username) < 0)
		return MQTT_RC_SERVER_UNAVAILABLE;
	if (a->has_expiry_max)
		engine_conn_cap_expiry(ec, a->expiry_max);
	return zauth_rules_set(z, ec, c, a->rules, zask_of(a)) < 0 ? MQTT_RC_SERVER_UNAVAILABLE : 0;
}

void zauth_forget_rules(struct midge *m, struct engine_conn *ec, struct conn *c)
{
	if (m->zauth)
		zauth_rules_set(m->zauth, ec, c, NULL, false);
}

static struct zpending **zauth_pending_by_id(struct zauth *z, uint64_t id)
{
	struct zpending **pp = &z->by_id[id % ZAUTH_BUCKETS];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->id_next;
	return pp;
}

/* Takes p off both tables (not freed). */
void zauth_pending_unlink(struct zauth *z, struct zpending *p)
{
	struct zpending **pp = zauth_pending_by_id(z, p->id);
	if (*pp)
		*pp = p->id_next;
	pp = &z->by_ec[zauth_ptr_bucket(p->ec)];
	while (*pp && *pp != p)
		pp = &(*pp)->ec_next;
	if (*pp)
		*pp = p->ec_next;
	z->n_pending--;
}

/* ------------------------------------------------------------ affinity */

static struct zroute **zauth_route_slot(struct zauth *z, const struct engine_conn *ec)
{
	struct zroute **pp = &z->routes[zauth_ptr_bucket(ec)];
	while (*pp && (*pp)->ec != ec)
		pp = &(*pp)->next;
	return pp;
}

/* The exchange of ec is over (or starts anew): its worker is forgotten. */
static void zauth_route_drop(struct zauth *z, const struct engine_conn *ec)
{
	struct zroute **pp = zauth_route_slot(z, ec);
	struct zroute *r = *pp;
	if (r) {
		*pp = r->next;
		free(r);
	}
}

/* The next step of ec's exchange goes to worker w. Returns 0 or -1 (out
 * of memory: the exchange is refused). */
static int zauth_route_set(struct zauth *z, struct engine_conn *ec, const struct zworker_route *w)
{
	struct zroute **pp = zauth_route_slot(z, ec);
	if (!*pp) {
		if (!(*pp = calloc(1, sizeof **pp)))
			return -1;
		(*pp)->ec = ec;
	}
	(*pp)->worker = *w;
	return 0;
}

/* A worker's answer that did not parse: counted, the first logged (with
 * what it refused); the request is refused as server unavailable. */
int zauth_bad_answer(struct zauth *z, const struct zworker_result *r, const char *refused)
{
	char why[400];
	pwfile_printable(r->note, strlen(r->note), why, sizeof why);
	if (!z->bad++)
		log_warn("auth workers: a bad answer (%s): %s", why, refused);
	return MQTT_RC_SERVER_UNAVAILABLE;
}

/*
 * The answer to an `auth` request (MQTT 5 enhanced authentication):
 * continue with the method's data, allow (applied as a connect answer is
 * before CONNACK; after it only the rules change), or deny. A timeout or
 * a bad answer refuses whatever midge_auth_on_timeout says: "allow"
 * cannot finish a method's exchange.
 */
static void zauth_step_result(struct zauth *z, struct zpending *p, struct conn *c,
			      const struct zworker_result *r)
{
	struct midge *m = z->m;
	const struct zproto_answer *a = &r->answer;
	int rc;
	zauth_route_drop(z, p->ec);
	if (r->status == ZWORKER_TIMEOUT) {
		z->timeouts++;
		rc = MQTT_RC_SERVER_UNAVAILABLE;
	} else if (r->status == ZWORKER_GONE) {
		/* the method's state went with its worker */
		z->gone++;
		rc = MQTT_RC_SERVER_UNAVAILABLE;
	} else if (r->status == ZWORKER_BAD) {
		rc = zauth_bad_answer(z, r, "authentication refused");
	} else if (a->defer) {
		/* no other source of the chain serves a method */
		rc = MQTT_RC_BAD_AUTH_METHOD;
	} else if (a->cont) {
		/* the next step goes to the worker holding the exchange */
		rc = zauth_route_set(z, p->ec, &r->worker) < 0 ? MQTT_RC_SERVER_UNAVAILABLE
							       : MQTT_RC_CONTINUE_AUTH;
	} else if (a->allow && engine_conn_version(p->ec) != 0) {
		/* re-authenticated: the user name and the session's terms
		 * stay; the rules are the latest answer's */
		const struct midge_client *cl = engine_conn_client(p->ec);
		rc = zauth_client_set(z, cl->client_id.p ? cl->client_id.p : "",
				      cl->client_id.p ? cl->client_id.len : 0, a->rules,
				      zask_of(a)) < 0
			     ? MQTT_RC_SERVER_UNAVAILABLE
			     : 0;
	} else {
		rc = zauth_apply(z, p->ec, c, a);
	}
	if (r->status == ZWORKER_ANSWER)
		latency_observe(&m->lat.auth, latency_now_us() - p->t0_us, 1);
	struct midge_str data = {a->has_data ? (const char *)a->data : NULL, a->data_len};
	if (c)
		conn_auth_step(m, c, rc, &data);
}

/* A result from the worker thread. */
static void zauth_on_result(void *ctx, struct zworker_result *r)
{
	struct zauth *z = ctx;
	struct midge *m = z->m;
	struct zpending *p = *zauth_pending_by_id(z, r->id);
	if (!p) { /* cancelled: the client went */
		zworker_result_free(r);
		return;
	}
	zauth_pending_unlink(z, p);
	if (p->acl) { /* a PUBLISH or SUBSCRIBE waits for it */
		zauth_acl_result(z, p, r);
		free(p);
		zworker_result_free(r);
		return;
	}
	struct conn *c = engine_conn_handle(p->ec);
	if (p->enhanced) {
		zauth_step_result(z, p, c, r);
		free(p);
		zworker_result_free(r);
		return;
	}
	int rc;
	struct engine_conn *ec = p->ec;
	struct auth_check *walk = p->walk;
	uint8_t key[32];
	uint64_t t0_us = p->t0_us;
	memcpy(key, p->key, sizeof key);
	free(p);
	if (r->status == ZWORKER_TIMEOUT) {
		/* definite even inside a chain: an outage must not hand the
		 * decision to another source (docs/auth.md) */
		z->timeouts++;
		rc = m->conf.zauth.on_timeout_allow ? 0 : MQTT_RC_SERVER_UNAVAILABLE;
	} else if (r->status == ZWORKER_BAD) {
		rc = zauth_bad_answer(z, r, "CONNECT refused");
	} else {
		latency_observe(&m->lat.auth, latency_now_us() - t0_us, 1);
		/* the workers' own answer is cached, a defer too: never the
		 * chain's outcome, so the later sources are asked each time */
		if (r->answer.defer) {
			zauth_cache_put(z, key, &r->answer);
			zworker_result_free(r);
			auth_check_resume(m, ec, walk);
			return;
		}
		rc = zauth_apply(z, ec, c, &r->answer);
		if (rc == 0 || !r->answer.allow)
			zauth_cache_put(z, key, &r->answer);
	}
	auth_check_drop(walk);
	zworker_result_free(r);
	if (c)
		conn_auth_done(m, c, rc);
}

static void zauth_on_async(uv_async_t *a)
{
	struct zauth *z = a->data;
	if (z->w)
		zworker_drain(z->w, zauth_on_result, z);
}

/* What a request says of the client (views into cl, user and c's
 * verified certificate; c may be NULL). */
struct zproto_connect zauth_client_fields(const struct midge_client *cl,
					  const struct midge_str *user, const struct conn *c)
{
	struct zproto_connect q = {
		.client_id = {cl->client_id.p, cl->client_id.len},
		.username = {user->p, user->len},
		.peer = cl->peer_addr,
		.peer_port = cl->peer_port,
		.listener = cl->listener,
		.protocol = cl->protocol,
		.tls = cl->tls,
	};
	if (c && c->tls_cert) {
		/* "subject\0fingerprint\0", subject "" when unwritable */
		q.tls_subject = c->tls_cert[0] ? c->tls_cert : NULL;
		q.tls_fingerprint = c->tls_cert + strlen(c->tls_cert) + 1;
		if (!q.tls_fingerprint[0])
			q.tls_fingerprint = NULL; /* vouched for by a PROXY header */
	}
	return q;
}

/*
 * Hands request json (ownership: the worker thread's from here, also on
 * failure) to the workers as id next_id + 1 and remembers it for ec.
 * Returns the pending entry, or NULL when the queue is full or memory
 * ran out.
 */
struct zpending *zauth_submit(struct zauth *z, struct engine_conn *ec, char *json, size_t len,
			      bool enhanced, const struct zworker_route *to)
{
	struct zpending *p = calloc(1, sizeof *p);
	if (!p) {
		zproto_wipe(json, len);
		return NULL;
	}
	if (zworker_submit(z->w, z->next_id + 1, json, len, to) < 0) {
		free(p);
		return NULL;
	}
	p->id = ++z->next_id;
	p->ec = ec;
	p->enhanced = enhanced;
	p->t0_us = latency_now_us();
	struct zpending **pp = zauth_pending_by_id(z, p->id);
	*pp = p;
	uint32_t b = zauth_ptr_bucket(ec);
	p->ec_next = z->by_ec[b];
	z->by_ec[b] = p;
	z->n_pending++;
	return p;
}

int zauth_connect(struct midge *m, const struct midge_client *cl, const struct midge_str *user,
		  const struct midge_str *pass, struct conn *c, struct auth_check *walk)
{
	struct zauth *z = m->zauth;
	struct engine_conn *ec = engine_conn_of(cl);
	if (!z)
		return MQTT_RC_SERVER_UNAVAILABLE;
	uint8_t key[32];
	zauth_cache_key(cl, user, pass, c, key);
	const struct zcached *hit = m->conf.zauth.cache_ttl ? zauth_cache_find(z, key) : NULL;
	if (hit)
		return hit->a.defer ? ZAUTH_DEFERRED : zauth_apply(z, ec, c, &hit->a);
	if (z->n_pending >= m->conf.zauth.queue)
		return MQTT_RC_SERVER_BUSY;
	struct zproto_connect q = zauth_client_fields(cl, user, c);
	q.password.p = pass->p;
	q.password.len = pass->len;
	char *json;
	size_t len;
	if (zproto_connect_request(&q, z->next_id + 1, &json, &len) < 0)
		return MQTT_RC_SERVER_UNAVAILABLE;
	struct zpending *p = zauth_submit(z, ec, json, len, false, NULL);
	if (!p)
		return MQTT_RC_SERVER_BUSY;
	memcpy(p->key, key, 32);
	p->walk = walk;
	return ENGINE_AUTH_PENDING;
}

int zauth_enhanced(struct midge *m, const struct midge_client *cl, enum engine_auth_step step,
		   const struct midge_str *method, const struct midge_str *data)
{
	struct zauth *z = m->zauth;
	if (!z)
		return MQTT_RC_BAD_AUTH_METHOD; /* [MQTT-4.12.0-1] nobody serves a method */
	if (z->n_pending >= m->conf.zauth.queue)
		return MQTT_RC_SERVER_BUSY;
	/* a continue goes to the worker that asked for it; connect and
	 * reauthenticate start an exchange on whichever worker is free */
	struct engine_conn *ec = engine_conn_of(cl);
	struct zworker_route to;
	bool pinned = false;
	if (step == ENGINE_AUTH_STEP_CONTINUE) {
		const struct zroute *r = *zauth_route_slot(z, ec);
		if (!r)
			return MQTT_RC_SERVER_UNAVAILABLE; /* no worker holds this exchange */
		to = r->worker;
		pinned = true;
	}
	zauth_route_drop(z, ec);
	struct zproto_connect q = zauth_client_fields(cl, &cl->username, engine_conn_handle(ec));
	struct zproto_auth a = {
		.step = step == ENGINE_AUTH_STEP_CONNECT    ? ZPROTO_STEP_CONNECT
			: step == ENGINE_AUTH_STEP_CONTINUE ? ZPROTO_STEP_CONTINUE
							    : ZPROTO_STEP_REAUTH,
		.method = {method->p, method->len},
		.data = {data->p, data->len},
	};
	char *json;
	size_t len;
	if (zproto_auth_request(&q, &a, z->next_id + 1, &json, &len) < 0)
		return MQTT_RC_SERVER_UNAVAILABLE;
	return zauth_submit(z, ec, json, len, true, pinned ? &to : NULL) ? ENGINE_AUTH_PENDING
									 : MQTT_RC_SERVER_BUSY;
}

void zauth_cancel(struct midge *m, const struct midge_client *cl)
{
	struct zauth *z = m->zauth;
	if (!z)
		return;
	struct engine_conn *ec = engine_conn_of(cl);
	zauth_route_drop(z, ec);
	for (struct zpending *p = z->by_ec[zauth_ptr_bucket(ec)]; p; p = p->ec_next)
		if (p->ec == ec && !p->acl) { /* `acl` requests go with the connection */
			/* the answer, when it comes, finds no request and is dropped */
			zauth_pending_unlink(z, p);
			auth_check_drop(p->walk);
			free(p);
			return;
		}
}

/* ------------------------------------------------------------ start, stop */

/* Reads a file of Z85 keys (one a line, '#' comments) into keys[]. */
static int zauth_read_keys(const char *path, char keys[][41], int max, int *n, char *err,
			   size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int lineno = 0;
	*n = 0;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open", path);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = strcspn(s, " \t\r\n");
		if (len == 0 || s[0] == '#')
			continue;
		if (len != 40 || *n >= max) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno,
				 len != 40 ? "not a 40-character Z85 key" : "too many keys");
			fclose(f);
			return -1;
		}
		memcpy(keys[*n], s, 40);
		keys[(*n)++][40] = '\0';
	}
	fclose(f);
	return 0;
}

/* Whether the chain in effect asks the workers. */
static bool zauth_in_chain(const struct security_set *s)
{
	for (int i = 0; s && i < s->chain.n; i++)
		if (s->chain.src[i] == AUTH_SRC_ZMQ)
			return true;
	return false;
}

int zauth_reload_check(const struct midge *m, const struct zauth_conf *nz,
		       const struct security_set *sec, char *err, size_t errlen)
{
	(void)nz;
	/* the endpoint stays as it was bound (zauth_reload()): the new
	 * chain must ask the workers exactly when they run */
	bool running = m->zauth != NULL;
	if (running != zauth_in_chain(sec)) {
		snprintf(err, errlen, "%s", running ? "the auth workers stay until a restart: keep "
						      "midge_auth_endpoint (and zmq in midge_auth_chain)"
						    : "midge_auth_endpoint was not set at start-up: a restart "
						      "starts the auth workers");
		return -1;
	}
	return 0;
}

/* Whether two optional strings differ. */
static bool zauth_differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

void zauth_reload(struct midge *m, struct zauth_conf *nz)
{
	struct zauth_conf *oz = &m->conf.zauth;
	if (zauth_differ(oz->endpoint, nz->endpoint) ||
	    zauth_differ(oz->curve_server_key_file, nz->curve_server_key_file) ||
	    zauth_differ(oz->curve_worker_keys_file, nz->curve_worker_keys_file) ||
	    oz->timeout_ms != nz->timeout_ms || oz->queue != nz->queue)
		log_warn("reload: midge_auth_endpoint, its CurveZMQ keys, midge_auth_timeout_ms and "
			 "midge_auth_worker_queue stay as they were: a restart changes them");
	/* ownership: the strings in force move to the new configuration */
	char **o[] = {&oz->endpoint, &oz->endpoint_where, &oz->curve_server_key_file,
		      &oz->curve_worker_keys_file};
	char **n[] = {&nz->endpoint, &nz->endpoint_where, &nz->curve_server_key_file,
		      &nz->curve_worker_keys_file};
	for (int i = 0; i < 4; i++) {
		char *t = *n[i];
		*n[i] = *o[i];
		*o[i] = t;
	}
	nz->timeout_ms = oz->timeout_ms;
	nz->queue = oz->queue;
}

static void zauth_wake(void *arg)
{
	uv_async_send(arg);
}

static void zauth_on_closed(uv_handle_t *h)
{
	free(h->data);
}

int zauth_start(struct midge *m)
{
	const struct zauth_conf *zc = &m->conf.zauth;
	char err[400];
	static char keys[ZWORKER_MAX_KEYS][41];
	char secret[1][41];
	if (!zc->endpoint || m->zauth)
		return 0;
	struct zworker_cfg wc = {.endpoint = zc->endpoint, .timeout_ms = zc->timeout_ms,
				 .queue = zc->queue, .wake = zauth_wake};
	if (zc->curve_server_key_file) {
		int n;
		if (zauth_read_keys(zc->curve_server_key_file, secret, 1, &n, err, sizeof err) < 0 ||
		    zauth_read_keys(zc->curve_worker_keys_file, keys, ZWORKER_MAX_KEYS, &wc.n_keys, err,
				    sizeof err) < 0)
			goto fail;
		if (n != 1 || wc.n_keys == 0) {
			snprintf(err, sizeof err, "%s", n != 1 ? "midge_auth_curve_server_key: no key"
							       : "midge_auth_curve_worker_keys: no key");
			goto fail;
		}
		wc.curve_secret = secret[0];
		for (int i = 0; i < wc.n_keys; i++)
			wc.worker_keys[i] = keys[i];
	}
	struct zauth *z = calloc(1, sizeof *z);
	if (!z) {
		snprintf(err, sizeof err, "out of memory");
		goto fail;
	}
	z->m = m;
	if (uv_async_init(&m->loop, &z->async, zauth_on_async) < 0) {
		free(z);
		snprintf(err, sizeof err, "uv_async_init failed");
		goto fail;
	}
	z->async.data = z;
	wc.wake_arg = &z->async;
	z->w = zworker_start(&wc, err, sizeof err);
	if (!z->w) {
		uv_close((uv_handle_t *)&z->async, zauth_on_closed);
		goto fail;
	}
	m->zauth = z;
	log_info("auth workers: %s (%s), timeout %u ms then %s, cache %u s x %u, %u requests at most",
		 zc->endpoint, wc.curve_secret ? "CurveZMQ" : "plain", zc->timeout_ms,
		 zc->on_timeout_allow ? "allow" : "deny", zc->cache_ttl, zc->cache_size, zc->queue);
	gnutls_memset(secret, 0, sizeof secret);
	return 0;
fail:
	gnutls_memset(secret, 0, sizeof secret);
	log_err("auth workers: %s", err);
	return -1;
}

void zauth_stop(struct midge *m)
{
	struct zauth *z = m->zauth;
	if (!z)
		return;
	m->zauth = NULL;
	zworker_stop(z->w); /* no wake-up after this */
	z->w = NULL;
	/* the clients first: their `acl` entries take their requests along */
	for (uint32_t b = 0; b < ZAUTH_BUCKETS; b++)
		while (z->clients[b])
			zauth_client_drop(z, &z->clients[b]);
	for (uint32_t b = 0; b < ZAUTH_BUCKETS; b++) {
		while (z->by_id[b]) {
			struct zpending *p = z->by_id[b];
			z->by_id[b] = p->id_next;
			auth_check_drop(p->walk);
			free(p);
		}
		while (z->routes[b]) {
			struct zroute *r = z->routes[b];
			z->routes[b] = r->next;
			free(r);
		}
	}
	while (z->fifo_head)
		zauth_cache_evict(z);
	uv_close((uv_handle_t *)&z->async, zauth_on_closed);
}
