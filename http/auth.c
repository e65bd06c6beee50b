/*
 * auth.c - who may use the HTTP server: HTTP Basic against a
 * mosquitto_passwd-format file (the broker's password checking, called,
 * not copied), bearer tokens from a file of "TOKEN ROLE" lines, and two
 * roles, read and admin (midge_http_admin names the password file's
 * admins).
 *
 * A password hash (argon2id: tens of milliseconds) is never computed on
 * the engine thread: a Basic check runs on the broker's hashing pool
 * (auth/pool.c, shared with CONNECT passwords) while libmicrohttpd keeps
 * the request suspended, and its completion, drained on the loop, resumes
 * every request that waited for it. Requests carrying the same
 * credentials while a check runs wait for that check (one hash for a
 * dashboard's burst). At most midge_http_auth_pending checks wait or
 * run; beyond that, and when the pool is full, 503 with Retry-After.
 *
 * Verified Basic credentials are remembered, as an HMAC-SHA-256 of user
 * and password under a key drawn at start-up, for HTTP_AUTH_CACHE_MS in
 * HTTP_AUTH_CACHE entries, so a dashboard polling every second does not
 * cost a hash per request.
 *
 * Failed logins are 401 and rate limited: an address with
 * HTTP_AUTH_FAILS_PER_ADDR failures in a window, its checks in flight
 * counted as failures-to-be, gets 429 without its password being checked
 * (a valid token, cheap to compare, and a login verified before still
 * pass; addresses are tracked in a table of HTTP_AUTH_ADDRS, the oldest
 * reused), and at most HTTP_AUTH_FAILS_PER_SEC failures a second are
 * checked broker-wide, so guessing costs the broker no hashing beyond
 * that.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "auth/passwd.h"
#include "auth/pool.h"
#include "auth/pwfile.h"
#include "http/internal.h"
#include "transport/broker.h"
#include "transport/config.h"
#include "transport/log.h"

#define HTTP_TOKEN_MIN 16
#define HTTP_TOKENS_MAX 256
#define HTTP_AUTH_ADDRS 64
#define HTTP_AUTH_WINDOW_MS 60000
#define HTTP_AUTH_FAILS_PER_ADDR 5
#define HTTP_AUTH_FAILS_PER_SEC 20
#define HTTP_AUTH_CACHE 16
#define HTTP_AUTH_CACHE_MS 60000

struct http_token {
	char *token;
	size_t len;
	enum http_role role;
};

struct http_fail {
	char addr[64];
	uint64_t window_start;
	uint32_t count;
};

struct http_cached {
	uint8_t digest[32];
	uint64_t until;
	enum http_role role;
	char user[128];
};

/* One Basic check on the hashing pool. The worker sees the job, the
 * copies of user and password and the database reference; the rest is
 * the loop thread's. */
struct http_check {
	struct auth_job job; /* first: the pool hands this back */
	struct http *h;
	struct http_check *prev, *next; /* pending checks of h->auth */
	struct http_req *waiters;       /* suspended, chained by check_next */
	struct passwd_db *db;
	uint8_t digest[32];
	bool stale; /* the password file was reloaded meanwhile: not cached */
	char peer[64];
	size_t user_len, pass_len;
	char data[]; /* user name, NUL, password */
};

struct http_auth {
	struct passwd_db *pw;
	uint8_t key[32]; /* of the credentials HMAC */
	struct http_check *checks;
	int n_checks, max_checks;
	struct http_token tokens[HTTP_TOKENS_MAX];
	int n_tokens;
	char *admins[CONF_HTTP_MAX_ADMINS];
	int n_admins;
	struct http_fail fails[HTTP_AUTH_ADDRS];
	struct http_cached cache[HTTP_AUTH_CACHE];
	uint64_t sec_start;
	uint32_t sec_fails;
	struct http_auth_stats st;
};

/* Reads "TOKEN ROLE" lines; '#' starts a comment line. Fails closed on a
 * line it cannot read, a short token or an unknown role. */
static int http_tokens_load(struct http_auth *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0, rc = 0;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char tok[600], role[32], extra[8];
		lineno++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		int n = sscanf(p, "%599s %31s %7s", tok, role, extra);
		if (n != 2) {
			snprintf(err, errlen, "%s:%d: expected 'TOKEN ROLE' (role read or admin)", path,
				 lineno);
			rc = -1;
			break;
		}
		enum http_role r = strcmp(role, "admin") == 0  ? HTTP_ROLE_ADMIN
				   : strcmp(role, "read") == 0 ? HTTP_ROLE_READ
							       : HTTP_ROLE_NONE;
		if (r == HTTP_ROLE_NONE) {
			snprintf(err, errlen, "%s:%d: role must be read or admin", path, lineno);
			rc = -1;
			break;
		}
		if (strlen(tok) < HTTP_TOKEN_MIN) {
			snprintf(err, errlen, "%s:%d: tokens need at least %d characters", path,
				 lineno, HTTP_TOKEN_MIN);
			rc = -1;
			break;
		}
		if (a->n_tokens >= HTTP_TOKENS_MAX) {
			snprintf(err, errlen, "%s:%d: at most %d tokens", path, lineno,
				 HTTP_TOKENS_MAX);
			rc = -1;
			break;
		}
		struct http_token *t = &a->tokens[a->n_tokens];
		if (!(t->token = strdup(tok))) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		t->len = strlen(tok);
		t->role = r;
		a->n_tokens++;
	}
	fclose(f);
	return rc;
}

struct http_auth *http_auth_new(const struct conf_http *cfg, char *err, size_t errlen)
{
	struct http_auth *a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->max_checks = cfg->auth_pending > 0 ? cfg->auth_pending : CONF_HTTP_DEFAULT_AUTH_PENDING;
	if (gnutls_rnd(GNUTLS_RND_KEY, a->key, sizeof a->key) < 0) {
		snprintf(err, errlen, "http: no random bytes for the credentials cache key");
		goto fail;
	}
	if (cfg->password_file) {
		a->pw = passwd_load(cfg->password_file, err, errlen);
		if (!a->pw)
			goto fail;
	}
	if (cfg->token_file && http_tokens_load(a, cfg->token_file, err, errlen) < 0)
		goto fail;
	if (cfg->n_admins && !cfg->password_file) {
		snprintf(err, errlen, "midge_http_admin names users of midge_http_password_file, "
				      "which is not set");
		goto fail;
	}
	for (int i = 0; i < cfg->n_admins; i++) {
		if (!(a->admins[i] = strdup(cfg->admins[i]))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		a->n_admins = i + 1;
	}
	return a;
fail:
	http_auth_free(a);
	return NULL;
}

void http_auth_free(struct http_auth *a)
{
	if (!a)
		return;
	passwd_unref(a->pw);
	for (int i = 0; i < a->n_tokens; i++) {
		memset(a->tokens[i].token, 0, a->tokens[i].len);
		free(a->tokens[i].token);
	}
	for (int i = 0; i < a->n_admins; i++)
		free(a->admins[i]);
	memset(a->cache, 0, sizeof a->cache);
	memset(a->key, 0, sizeof a->key);
	free(a);
}

bool http_auth_configured(const struct http_auth *a)
{
	return a && (a->pw || a->n_tokens);
}

void http_auth_stats(const struct http_auth *a, struct http_auth_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!a)
		return;
	*out = a->st;
	out->pending = (uint64_t)a->n_checks;
}

/* Equal in time that depends on the lengths only. */
static bool http_ct_equal(const char *x, size_t xl, const char *y, size_t yl)
{
	unsigned char d = xl != yl;
	size_t n = xl < yl ? xl : yl;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

/* The failure record of addr, the oldest one reused when all are taken. */
static struct http_fail *http_fail_slot(struct http_auth *a, const char *addr, uint64_t now)
{
	struct http_fail *oldest = &a->fails[0];
	for (int i = 0; i < HTTP_AUTH_ADDRS; i++) {
		struct http_fail *f = &a->fails[i];
		if (f->count && strcmp(f->addr, addr) == 0) {
			if (now - f->window_start >= HTTP_AUTH_WINDOW_MS) {
				f->count = 0;
				f->window_start = now;
			}
			return f;
		}
		if (!f->count || f->window_start < oldest->window_start)
			oldest = f;
	}
	snprintf(oldest->addr, sizeof oldest->addr, "%s", addr);
	oldest->count = 0;
	oldest->window_start = now;
	return oldest;
}

static bool http_fail_throttled(struct http_auth *a, const char *addr, uint64_t now)
{
	if (now / 1000 != a->sec_start) {
		a->sec_start = now / 1000;
		a->sec_fails = 0;
	}
	if (a->sec_fails >= HTTP_AUTH_FAILS_PER_SEC)
		return true;
	/* checks in flight count: a burst of guesses in parallel runs no
	 * more hashes than the same guesses one after another */
	uint32_t n = 0;
	for (const struct http_check *k = a->checks; k; k = k->next)
		n += strcmp(k->peer, addr) == 0;
	for (int i = 0; i < HTTP_AUTH_ADDRS; i++) {
		const struct http_fail *f = &a->fails[i];
		if (f->count && strcmp(f->addr, addr) == 0 &&
		    now - f->window_start < HTTP_AUTH_WINDOW_MS)
			n += f->count;
	}
	return n >= HTTP_AUTH_FAILS_PER_ADDR;
}

static void http_fail_note(struct http_auth *a, const char *addr, uint64_t now)
{
	a->st.failures++;
	a->sec_fails++;
	http_fail_slot(a, addr, now)->count++;
}

static enum http_role http_user_role(const struct http_auth *a, const char *user)
{
	for (int i = 0; i < a->n_admins; i++)
		if (strcmp(a->admins[i], user) == 0)
			return HTTP_ROLE_ADMIN;
	return HTTP_ROLE_READ;
}

/* The cache's and the pending table's name for (user, password): an
 * HMAC under a key of this run, so a memory dump does not give a fast
 * offline test of guesses. */
static void http_digest(const struct http_auth *a, const char *user, const char *pass,
			uint8_t out[32])
{
	gnutls_hmac_hd_t hd;
	memset(out, 0, 32);
	if (gnutls_hmac_init(&hd, GNUTLS_MAC_SHA256, a->key, sizeof a->key) < 0)
		return;
	gnutls_hmac(hd, user, strlen(user) + 1); /* the NUL separates user and password */
	gnutls_hmac(hd, pass, strlen(pass));
	gnutls_hmac_deinit(hd, out);
}

static const struct http_cached *http_cache_find(const struct http_auth *a, const uint8_t d[32],
						 uint64_t now)
{
	for (int i = 0; i < HTTP_AUTH_CACHE; i++)
		if (a->cache[i].until > now && http_ct_equal((const char *)a->cache[i].digest, 32,
							      (const char *)d, 32))
			return &a->cache[i];
	return NULL;
}

static void http_cache_put(struct http_auth *a, const uint8_t d[32], enum http_role role,
			   const char *user, uint64_t now)
{
	struct http_cached *slot = &a->cache[0];
	for (int i = 1; i < HTTP_AUTH_CACHE; i++)
		if (a->cache[i].until < slot->until)
			slot = &a->cache[i];
	memcpy(slot->digest, d, 32);
	slot->until = now + HTTP_AUTH_CACHE_MS;
	slot->role = role;
	snprintf(slot->user, sizeof slot->user, "%s", user);
}

/* ---- checks on the hashing pool ---- */

static void http_check_run(struct auth_job *j)
{
	struct http_check *k = (struct http_check *)j;
	const char *pass = k->data + k->user_len + 1;
	j->result = passwd_check(k->db, k->data, k->user_len, pass, k->pass_len);
	pwfile_wipe(k->data + k->user_len + 1, k->pass_len);
}

static void http_check_free(struct http_check *k)
{
	passwd_unref(k->db);
	pwfile_wipe(k->data, k->user_len + 1 + k->pass_len);
	free(k);
}

/* A check that ended after the pool was stopped, on its worker. */
static void http_check_discard(struct auth_job *j)
{
	http_check_free((struct http_check *)j);
}

static void http_check_unlink(struct http_auth *a, struct http_check *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		a->checks = k->next;
	if (k->next)
		k->next->prev = k->prev;
	k->prev = k->next = NULL;
	a->n_checks--;
}

/* Hands the verdict to every request that waited and resumes it. */
static void http_check_wake(struct http *h, struct http_check *k, enum http_auth_verdict v,
			    enum http_role role)
{
	struct http_req *r;
	while ((r = k->waiters)) {
		k->waiters = r->check_next;
		r->check_next = NULL;
		r->verdict = v;
		r->role = v == HTTP_AUTH_OK ? role : HTTP_ROLE_NONE;
		r->auth_state = HTTP_REQ_AUTH_DONE;
		snprintf(r->user, sizeof r->user, "%.*s", (int)k->user_len, k->data);
		MHD_resume_connection(r->conn);
	}
	http_run_soon(h);
}

/* A finished (or cancelled) check, on the loop thread (from the pool's
 * drain). Cancelled: http_auth_abort() has answered its requests and
 * the HTTP server may be gone; only the job is touched. */
static void http_check_done(struct auth_job *j)
{
	struct http_check *k = (struct http_check *)j;
	if (j->cancelled) {
		http_check_free(k);
		return;
	}
	struct http *h = k->h;
	struct http_auth *a = h->auth;
	uint64_t now = broker_now_ms();
	enum http_role role = HTTP_ROLE_NONE;
	http_check_unlink(a, k);
	a->st.checks++;
	if (j->result == 0) {
		role = http_user_role(a, k->data);
		if (!k->stale)
			http_cache_put(a, k->digest, role, k->data, now);
	} else {
		http_fail_note(a, k->peer, now);
	}
	http_check_wake(h, k, j->result == 0 ? HTTP_AUTH_OK : HTTP_AUTH_FAILED, role);
	http_check_free(k);
}

/* A new check of user and pass for r, or one already running for the
 * same credentials. HTTP_AUTH_PENDING (r waits, suspended by the
 * caller) or HTTP_AUTH_BUSY. */
static enum http_auth_verdict http_check_start(struct http *h, struct http_auth *a,
					       struct http_req *r, const uint8_t d[32],
					       const char *user, const char *pass)
{
	for (struct http_check *k = a->checks; k; k = k->next)
		if (!k->stale && http_ct_equal((const char *)k->digest, 32, (const char *)d, 32)) {
			r->check_next = k->waiters;
			k->waiters = r;
			return HTTP_AUTH_PENDING;
		}
	if (a->n_checks >= a->max_checks || !h->m->auth_pool)
		goto busy;
	size_t ul = strlen(user), pl = strlen(pass);
	struct http_check *k = calloc(1, sizeof *k + ul + 1 + pl + 1);
	if (!k)
		goto busy;
	k->job.run = http_check_run;
	k->job.done = http_check_done;
	k->job.discard = http_check_discard;
	k->job.key = k;
	k->h = h;
	k->db = passwd_ref(a->pw);
	memcpy(k->digest, d, 32);
	snprintf(k->peer, sizeof k->peer, "%s", r->peer);
	k->user_len = ul;
	k->pass_len = pl;
	memcpy(k->data, user, ul + 1);
	memcpy(k->data + ul + 1, pass, pl + 1);
	if (auth_pool_submit(h->m->auth_pool, &k->job) < 0) {
		http_check_free(k);
		goto busy;
	}
	k->next = a->checks;
	if (a->checks)
		a->checks->prev = k;
	a->checks = k;
	a->n_checks++;
	r->check_next = NULL;
	k->waiters = r;
	return HTTP_AUTH_PENDING;
busy:
	a->st.busy++;
	return HTTP_AUTH_BUSY;
}

void http_auth_abort(struct http *h, struct http_auth *a)
{
	if (!a)
		return;
	while (a->checks) {
		struct http_check *k = a->checks;
		http_check_unlink(a, k);
		/* it comes back through the drain cancelled and is freed
		 * there, or by its worker if the pool stops first */
		auth_pool_cancel(h->m->auth_pool, k);
		http_check_wake(h, k, HTTP_AUTH_BUSY, HTTP_ROLE_NONE);
	}
}

void http_auth_take_over(struct http_auth *a, struct http_auth *old)
{
	a->checks = old->checks;
	a->n_checks = old->n_checks;
	for (struct http_check *k = a->checks; k; k = k->next)
		k->stale = true;
	old->checks = NULL;
	old->n_checks = 0;
	memcpy(a->fails, old->fails, sizeof a->fails);
	a->sec_start = old->sec_start;
	a->sec_fails = old->sec_fails;
	a->st = old->st;
}

/* HTTP Basic against the password file. */
static enum http_auth_verdict http_auth_basic(struct http *h, struct http_auth *a,
					      struct http_req *r, uint64_t now)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(r->conn, &pass);
	enum http_auth_verdict v = HTTP_AUTH_FAILED;
	uint8_t d[32];
	if (!user || !a->pw) {
		http_fail_note(a, r->peer, now);
		goto out;
	}
	/* for the log line of a failure */
	snprintf(r->user, sizeof r->user, "%s", user);
	http_digest(a, user, pass ? pass : "", d);
	const struct http_cached *hit = http_cache_find(a, d, now);
	if (hit) {
		r->role = hit->role;
		snprintf(r->user, sizeof r->user, "%s", hit->user);
		v = HTTP_AUTH_OK;
		goto out;
	}
	if (http_fail_throttled(a, r->peer, now)) {
		a->st.throttled++;
		v = HTTP_AUTH_THROTTLED;
		goto out;
	}
	v = http_check_start(h, a, r, d, user, pass ? pass : "");
out:
	memset(d, 0, sizeof d);
	if (pass) {
		memset(pass, 0, strlen(pass));
		MHD_free(pass);
	}
	if (user)
		MHD_free(user);
	return v;
}

static enum http_auth_verdict http_auth_bearer(struct http_auth *a, const char *tok, size_t len,
					       const char *peer, uint64_t now,
					       enum http_role *role, char *user_out,
					       size_t user_len)
{
	/* every token is compared, so the time says nothing about which
	 * matched; comparing is cheap, so a valid token passes even from a
	 * throttled address, and guesses from it get 429 */
	int found = -1;
	for (int i = 0; i < a->n_tokens; i++)
		if (http_ct_equal(a->tokens[i].token, a->tokens[i].len, tok, len) && found < 0)
			found = i;
	if (found < 0) {
		if (http_fail_throttled(a, peer, now)) {
			a->st.throttled++;
			return HTTP_AUTH_THROTTLED;
		}
		http_fail_note(a, peer, now);
		return HTTP_AUTH_FAILED;
	}
	*role = a->tokens[found].role;
	snprintf(user_out, user_len, "token#%d", found + 1);
	return HTTP_AUTH_OK;
}

enum http_auth_verdict http_auth_check(struct http *h, struct http_req *r, uint64_t now_ms)
{
	struct http_auth *a = h->auth;
	r->role = HTTP_ROLE_NONE;
	r->user[0] = '\0';
	const char *hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	if (!hdr)
		return HTTP_AUTH_MISSING;
	if (strncasecmp(hdr, "Bearer ", 7) == 0) {
		const char *tok = hdr + 7;
		while (*tok == ' ')
			tok++;
		return http_auth_bearer(a, tok, strlen(tok), r->peer, now_ms, &r->role, r->user,
					sizeof r->user);
	}
	if (strncasecmp(hdr, "Basic ", 6) == 0)
		return http_auth_basic(h, a, r, now_ms);
	http_fail_note(a, r->peer, now_ms);
	return HTTP_AUTH_FAILED;
}
