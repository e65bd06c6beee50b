/*
 * auth.c - the engine's authentication callbacks, as the broker answers
 * them. A password is checked (auth/passwd.c) on the worker pool
 * (auth/pool.c) while the CONNECT waits (ENGINE_AUTH_PENDING); the
 * finished checks come back to the loop through the pool and auth_async,
 * and conn_auth_done() gives the engine each decision. A TLS identity
 * (use_identity_as_username, use_subject_as_username, a PSK identity) is
 * the authentication itself: the CONNECT's password is not checked, as in
 * Mosquitto.
 *
 * A CONNECT walks the sources of midge_auth_chain that have something to
 * check (auth/chain.h), in order, until one answers. The job runs a run
 * of pool sources: the password file (a user it does not know defers
 * when a later source can answer) and JWT (auth/jwt.c: RS/ES signatures
 * cost as much as a hash). It stops before a zmq link: back on the loop,
 * the same walk (struct auth_check) goes to the auth workers (zauth.c),
 * which decide, or defer and hand it back here for the next run of pool
 * sources; when every source deferred, Mosquitto's rule decides
 * (security_undecided()). One owner at a time (the pool, the workers'
 * pending request, or the loop between them), so a cancel finds it in
 * one place and no source is asked twice. A token's user name, rules
 * and expiry come back with the decision and are attached to the
 * connection (clientauth.h) before the engine hears it.
 *
 * Workers see only the job: a copy of the client id, user name and
 * password and references to the password database and JWT verifier,
 * taken and dropped on the loop thread. Nothing here blocks the loop: a
 * full pool refuses the CONNECT with "server busy".
 */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <time.h>

#include "auth/jwt.h"
#include "auth/passwd.h"
#include "auth/pool.h"
#include "auth/pwfile.h"
#include "codec/codec.h"
#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/clientauth.h"
#include "transport/conn.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/tls.h"
#include "transport/zauth.h"

/* The job's result when its pool sources deferred up to a zmq link. */
#define AUTH_CHECK_DEFERRED 0x201

/* One CONNECT's chain: what the worker needs, and nothing else. */
struct auth_check {
	struct auth_job job; /* first: the pool hands this back */
	struct security_check chk; /* references of its own */
	struct jwt_result jwt;     /* a token's gifts, when JWT allowed */
	bool by_jwt;
	bool has_user, has_pass; /* absent differs from empty (the workers see null) */
	uint8_t next;            /* the chain's next source to ask */
	uint64_t t0_us; /* submitted: the check's latency includes its wait */
	size_t cid_len, user_len, pass_len;
	char data[]; /* client id, user name, then password */
};

/* The password file's answer; defers for a user it does not know when a
 * later source has something to check (alone, it checks a dummy entry
 * so an unknown user costs what a known one does). */
static int auth_step_passwd(struct auth_check *k, bool more)
{
	const char *user = k->data + k->cid_len, *pass = user + k->user_len;
	if (more && !passwd_has_user(k->chk.db, user, k->user_len))
		return AUTH_DEFER;
	return passwd_check(k->chk.db, user, k->user_len, pass, k->pass_len) == 0 ? AUTH_ALLOW
										 : AUTH_DENY;
}

static int auth_step_jwt(struct auth_check *k)
{
	const char *user = k->data + k->cid_len, *pass = user + k->user_len;
	const char *t = k->chk.jwt_from_username ? user : pass;
	size_t n = k->chk.jwt_from_username ? k->user_len : k->pass_len;
	if (jwt_verify(k->chk.jwt, t, n, k->data, k->cid_len, (int64_t)time(NULL), &k->jwt) !=
	    JWT_ALLOW)
		return AUTH_DENY;
	k->by_jwt = true;
	return AUTH_ALLOW;
}

static void auth_check_run(struct auth_job *j)
{
	struct auth_check *k = (struct auth_check *)j;
	int a = AUTH_DEFER;
	while (a == AUTH_DEFER && k->next < k->chk.chain.n) {
		uint8_t src = k->chk.chain.src[k->next];
		if (src == AUTH_SRC_ZMQ) {
			/* the workers' turn, on the loop: the password goes on */
			j->result = AUTH_CHECK_DEFERRED;
			return;
		}
		bool more = k->next + 1 < k->chk.chain.n;
		a = src == AUTH_SRC_PASSWD ? auth_step_passwd(k, more) : auth_step_jwt(k);
		k->next++;
	}
	pwfile_wipe(k->data + k->cid_len + k->user_len, k->pass_len);
	/* every source deferred: not possible while the last pool source
	 * always answers, refused if it ever is */
	j->result = a == AUTH_ALLOW ? 0 : MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static void auth_check_free(struct auth_check *k)
{
	passwd_unref(k->chk.db);
	jwt_verifier_unref(k->chk.jwt);
	jwt_result_clear(&k->jwt);
	pwfile_wipe(k->data, k->cid_len + k->user_len + k->pass_len);
	free(k);
}

/* A refusal by a token, said once in the log (the client only learns
 * "bad user name or password"). */
static void auth_log_refused(const struct auth_check *k)
{
	if (!k->jwt.why[0])
		return;
	char who[300];
	pwfile_printable(k->data, k->cid_len, who, sizeof who);
	log_notice("CONNECT of '%s' refused: token %s", who, k->jwt.why);
}

/* The client id a connection's entry is kept under: the token's user
 * name where use_username_as_clientid makes it the client id. */
static void auth_entry_key(const struct conn *c, const struct auth_check *k, const char **key,
			   size_t *len)
{
	bool by_user = c->listener && c->listener->username_as_clientid;
	*key = by_user ? k->jwt.user : k->data;
	*len = by_user ? k->jwt.user_len : k->cid_len;
}

/* An accepted token on the loop thread: its user name replaces the
 * CONNECT's, its rules and expiry go with the connection. 0, or -1
 * (OOM: refuse). */
static int auth_apply_jwt(struct midge *m, struct conn *c, struct engine_conn *ec,
			  struct auth_check *k)
{
	if (engine_conn_set_identity(ec, k->jwt.user) < 0)
		return -1;
	struct rules *r = k->jwt.rules;
	k->jwt.rules = NULL; /* clientauth owns them now */
	int64_t exp = m->sec && m->sec->jwt_disconnect ? k->jwt.exp : 0;
	if (!r && !exp)
		return 0;
	const char *key;
	size_t len;
	auth_entry_key(c, k, &key, &len);
	return clientauth_attach(m, ec, key, len, r, exp);
}

/* A check that ended after the pool was stopped, on its worker. */
static void auth_check_discard(struct auth_job *j)
{
	auth_check_free((struct auth_check *)j);
}

/* A finished (or cancelled) check, on the loop thread. */
static void auth_on_done(void *ctx, struct auth_job *j)
{
	struct midge *m = ctx;
	struct auth_check *k = (struct auth_check *)j;
	int verdict = j->result;
	if (!j->cancelled)
		latency_observe(&m->lat.auth, latency_now_us() - k->t0_us, 1);
	/* Not cancelled: the engine connection (the key) still waits. */
	struct engine_conn *ec = j->cancelled ? NULL : (struct engine_conn *)j->key;
	struct conn *c = ec ? engine_conn_handle(ec) : NULL;
	if (c && verdict == AUTH_CHECK_DEFERRED) {
		auth_check_resume(m, ec, k);
		return;
	}
	if (c && verdict)
		auth_log_refused(k);
	bool attached = c && !verdict && k->by_jwt;
	if (attached && auth_apply_jwt(m, c, ec, k) < 0)
		verdict = MQTT_RC_SERVER_UNAVAILABLE;
	if (c && !verdict)
		zauth_forget_rules(m, ec, c);
	if (c && conn_auth_done(ctx, c, verdict) < 0 && attached) {
		const char *key;
		size_t len;
		auth_entry_key(c, k, &key, &len);
		clientauth_refused(m, ec, key, len);
	}
	auth_check_free(k);
}

static void auth_on_async(uv_async_t *a)
{
	struct midge *m = a->data;
	if (m->auth_pool)
		auth_pool_drain(m->auth_pool, auth_on_done, m);
}

/* On a worker thread: uv_async_send is the one libuv call that may be
 * made from another thread. */
static void auth_wake(void *arg)
{
	uv_async_send(arg);
}

int auth_start(struct midge *m)
{
	if (uv_async_init(&m->loop, &m->auth_async, auth_on_async) < 0)
		return -1;
	m->auth_async.data = m;
	if (zauth_start(m) < 0)
		return -1;
	if (m->auth_pool)
		return 0;
	unsigned threads = m->conf.auth_threads ? m->conf.auth_threads : auth_pool_default_threads();
	unsigned queue = m->conf.auth_queue ? m->conf.auth_queue : 64u * threads;
	m->auth_pool = auth_pool_new(threads, queue, auth_wake, auth_check_discard, &m->auth_async);
	if (!m->auth_pool || clientauth_start(m) < 0)
		return -1;
	log_info("password checks: %u worker thread(s), %u may wait", threads, queue);
	return 0;
}

void auth_stop(struct midge *m)
{
	zauth_stop(m);
	/* every check comes back cancelled; one that is running is freed by
	 * its worker when it ends (the loop does not wait for it) */
	auth_pool_free(m->auth_pool, auth_on_done, m);
	m->auth_pool = NULL;
	clientauth_stop(m);
}

/* One line a second at most while checks are refused. */
static void auth_log_busy(struct midge *m, const struct midge_client *client)
{
	uint64_t now = broker_now_ms();
	if (now - m->auth_busy_logged_ms >= 1000) {
		char who[300];
		pwfile_printable(client->client_id.p ? client->client_id.p : "",
				 client->client_id.p ? client->client_id.len : 0, who, sizeof(who));
		log_warn("CONNECT of '%s' from %s refused with server busy: %u password checks "
			 "running or waiting (midge_auth_threads %u, midge_auth_queue %u); %llu "
			 "refused since the last line",
			 who, client->peer_addr ? client->peer_addr : "?",
			 auth_pool_threads(m->auth_pool) + auth_pool_queue(m->auth_pool),
			 auth_pool_threads(m->auth_pool), auth_pool_queue(m->auth_pool),
			 (unsigned long long)m->auth_busy + 1);
		m->auth_busy_logged_ms = now;
		m->auth_busy = 0;
	} else {
		m->auth_busy++;
	}
}

/* Queues k's next run of pool sources: ENGINE_AUTH_PENDING (the pool
 * holds k), or a refusal (k still the caller's). */
static int auth_submit(struct midge *m, const struct midge_client *cl, struct auth_check *k)
{
	if (!m->auth_pool)
		return MQTT_RC_SERVER_UNAVAILABLE;
	k->t0_us = latency_now_us();
	if (auth_pool_submit(m->auth_pool, &k->job) < 0) {
		auth_log_busy(m, cl);
		return MQTT_RC_SERVER_BUSY;
	}
	return ENGINE_AUTH_PENDING;
}

/* A field of the walk's copy, absent when the CONNECT had none. */
static struct midge_str auth_check_field(const char *p, size_t len, bool has)
{
	struct midge_str f = {has ? p : NULL, has ? len : 0};
	return f;
}

/*
 * Walks k's chain from k->next, on the loop: a run of pool sources goes
 * to the pool, a zmq link to the workers (a cached defer goes straight
 * on), and when every source has deferred Mosquitto's rule decides.
 * Returns ENGINE_AUTH_PENDING (the pool or the workers hold k now), or
 * the decision (k still the caller's).
 */
static int auth_walk(struct midge *m, struct engine_conn *ec, struct auth_check *k)
{
	const struct midge_client *cl = engine_conn_client(ec);
	struct conn *c = engine_conn_handle(ec);
	while (k->next < k->chk.chain.n) {
		if (k->chk.chain.src[k->next] != AUTH_SRC_ZMQ)
			return auth_submit(m, cl, k);
		k->next++;
		const char *user = k->data + k->cid_len;
		struct midge_str u = auth_check_field(user, k->user_len, k->has_user);
		struct midge_str p = auth_check_field(user + k->user_len, k->pass_len, k->has_pass);
		int rc = zauth_connect(m, cl, &u, &p, c, k);
		if (rc != ZAUTH_DEFERRED)
			return rc;
	}
	if (!m->sec)
		return MQTT_RC_NOT_AUTHORIZED;
	int rc = security_undecided(m->sec, cl, k->has_user, c && conn_tls_authenticated(c));
	if (rc == 0)
		zauth_forget_rules(m, ec, c);
	return rc;
}

void auth_check_resume(struct midge *m, struct engine_conn *ec, struct auth_check *k)
{
	struct conn *c = engine_conn_handle(ec);
	int rc = auth_walk(m, ec, k);
	if (rc == ENGINE_AUTH_PENDING)
		return;
	auth_check_free(k);
	if (c)
		conn_auth_done(m, c, rc);
}

void auth_check_drop(struct auth_check *k)
{
	if (k)
		auth_check_free(k);
}

int auth_connect(void *ctx, const struct midge_client *client, const struct midge_str *username,
		 const struct midge_str *password)
{
	struct midge *m = ctx;
	struct engine_conn *ec = engine_conn_of(client);
	struct conn *c = engine_conn_handle(ec);
	struct security_check chk;
	/* no realm yet (the embedding API before midge_run): nobody is let in */
	if (!m->sec)
		return MQTT_RC_NOT_AUTHORIZED;
	int rc = security_connect(m->sec, client, username, password,
				  c && conn_tls_authenticated(c), &chk);
	if (rc != SECURITY_CHECK_PASSWORD)
		return rc;
	size_t ul = username && username->p ? username->len : 0;
	size_t pl = password && password->p ? password->len : 0;
	size_t cl = client->client_id.p ? client->client_id.len : 0;
	struct auth_check *k = malloc(sizeof(*k) + cl + ul + pl);
	if (!k)
		return MQTT_RC_SERVER_UNAVAILABLE;
	memset(k, 0, sizeof(*k));
	k->job.run = auth_check_run;
	k->job.key = ec;
	k->cid_len = cl;
	k->user_len = ul;
	k->pass_len = pl;
	k->has_user = username && username->p;
	k->has_pass = password && password->p;
	if (cl)
		memcpy(k->data, client->client_id.p, cl);
	if (ul)
		memcpy(k->data + cl, username->p, ul);
	if (pl)
		memcpy(k->data + cl + ul, password->p, pl);
	k->chk = chk;
	if (chk.db)
		passwd_ref(chk.db);
	if (chk.jwt)
		jwt_verifier_ref(chk.jwt);
	rc = auth_walk(m, ec, k);
	if (rc != ENGINE_AUTH_PENDING)
		auth_check_free(k);
	return rc;
}

int auth_enhanced(void *ctx, const struct midge_client *client, enum engine_auth_step step,
		  const struct midge_str *method, const struct midge_str *data)
{
	struct midge *m = ctx;
	if (!m->sec)
		return MQTT_RC_NOT_AUTHORIZED;
	if (!zauth_on(m)) /* [MQTT-4.12.0-1] only workers serve methods */
		return MQTT_RC_BAD_AUTH_METHOD;
	if (step == ENGINE_AUTH_STEP_CONNECT && !security_admits(m->sec, client))
		return MQTT_RC_NOT_AUTHORIZED;
	return zauth_enhanced(m, client, step, method, data);
}

void auth_connect_cancel(void *ctx, const struct midge_client *client)
{
	struct midge *m = ctx;
	/* the check comes back through the drain marked cancelled and is
	 * freed there; one still waiting never runs */
	if (m->auth_pool)
		auth_pool_cancel(m->auth_pool, engine_conn_of(client));
	zauth_cancel(m, client);
}
