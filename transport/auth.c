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
 * Workers see only the job: a copy of the user name and password and a
 * reference to the password database, taken and dropped on the loop
 * thread. Nothing here blocks the loop: a full pool refuses the CONNECT
 * with "server busy".
 */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "auth/passwd.h"
#include "auth/pool.h"
#include "auth/pwfile.h"
#include "codec/codec.h"
#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/security.h"
#include "transport/tls.h"
#include "transport/zauth.h"

/* One password check: what the worker needs, and nothing else. */
struct auth_check {
	struct auth_job job; /* first: the pool hands this back */
	struct passwd_db *db;
	uint64_t t0_us; /* submitted: the check's latency includes its wait */
	size_t user_len, pass_len;
	char data[]; /* user name, then password */
};

static void auth_check_run(struct auth_job *j)
{
	struct auth_check *k = (struct auth_check *)j;
	int rc = passwd_check(k->db, k->data, k->user_len, k->data + k->user_len, k->pass_len);
	pwfile_wipe(k->data + k->user_len, k->pass_len);
	j->result = rc == 0 ? 0 : MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static void auth_check_free(struct auth_check *k)
{
	passwd_unref(k->db);
	pwfile_wipe(k->data, k->user_len + k->pass_len);
	free(k);
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
	struct conn *c = j->cancelled ? NULL : engine_conn_handle((struct engine_conn *)j->key);
	auth_check_free(k);
	if (c)
		conn_auth_done(ctx, c, verdict);
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
	if (!m->auth_pool)
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

int auth_connect(void *ctx, const struct midge_client *client, const struct midge_str *username,
		 const struct midge_str *password)
{
	struct midge *m = ctx;
	struct engine_conn *ec = engine_conn_of(client);
	struct conn *c = engine_conn_handle(ec);
	struct passwd_db *db;
	/* no realm yet (the embedding API before midge_run): nobody is let in */
	if (!m->sec)
		return MQTT_RC_NOT_AUTHORIZED;
	if (zauth_on(m)) /* the workers decide, after the realm's own rules */
		return security_admits(m->sec, client) ? zauth_connect(m, client, username, password, c)
						       : MQTT_RC_NOT_AUTHORIZED;
	int rc = security_connect(m->sec, client, username, password,
				  c && conn_tls_authenticated(c), &db);
	if (rc != SECURITY_CHECK_PASSWORD)
		return rc;
	if (!m->auth_pool)
		return MQTT_RC_SERVER_UNAVAILABLE;
	struct auth_check *k = malloc(sizeof(*k) + username->len + password->len);
	if (!k)
		return MQTT_RC_SERVER_UNAVAILABLE;
	memset(&k->job, 0, sizeof(k->job));
	k->job.run = auth_check_run;
	k->job.key = ec;
	k->user_len = username->len;
	k->pass_len = password->len;
	memcpy(k->data, username->p, username->len);
	memcpy(k->data + username->len, password->p, password->len);
	k->db = passwd_ref(db);
	k->t0_us = latency_now_us();
	if (auth_pool_submit(m->auth_pool, &k->job) < 0) {
		auth_check_free(k);
		auth_log_busy(m, client);
		return MQTT_RC_SERVER_BUSY;
	}
	return ENGINE_AUTH_PENDING;
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
