/*
 * auth.c - who may use the HTTP server: HTTP Basic against a
 * mosquitto_passwd-format file (the broker's password checking, called,
 * not copied), bearer tokens from a file of "TOKEN ROLE" lines, and two
 * roles, read and admin (midge_http_admin names the password file's
 * admins). Failed logins are 401 and rate limited: after
 * HTTP_AUTH_FAILS_PER_ADDR failures in a window an address gets 429
 * without its password being checked (a valid token, cheap to compare,
 * and a login verified before still pass), and at most
 * HTTP_AUTH_FAILS_PER_SEC failures a second are checked broker-wide, so
 * guessing costs the broker no hashing beyond that.
 *
 * Verified Basic credentials are remembered (as a SHA-256 of user and
 * password) for HTTP_AUTH_CACHE_MS, so a dashboard polling every second
 * does not cost a password hash per request, whatever the hash scheme.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "http/internal.h"
#include "transport/config.h"
#include "auth/passwd.h"

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

struct http_auth {
	struct passwd_db *pw;
	struct http_token tokens[HTTP_TOKENS_MAX];
	int n_tokens;
	char *admins[CONF_HTTP_MAX_ADMINS];
	int n_admins;
	struct http_fail fails[HTTP_AUTH_ADDRS];
	struct http_cached cache[HTTP_AUTH_CACHE];
	uint64_t sec_start;
	uint32_t sec_fails;
	uint64_t failures;
	uint64_t throttled;
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
	free(a);
}

bool http_auth_configured(const struct http_auth *a)
{
	return a && (a->pw || a->n_tokens);
}

uint64_t http_auth_failures(const struct http_auth *a)
{
	return a ? a->failures : 0;
}

uint64_t http_auth_throttled(const struct http_auth *a)
{
	return a ? a->throttled : 0;
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
	for (int i = 0; i < HTTP_AUTH_ADDRS; i++) {
		const struct http_fail *f = &a->fails[i];
		if (f->count >= HTTP_AUTH_FAILS_PER_ADDR && strcmp(f->addr, addr) == 0 &&
		    now - f->window_start < HTTP_AUTH_WINDOW_MS)
			return true;
	}
	return false;
}

static void http_fail_note(struct http_auth *a, const char *addr, uint64_t now)
{
	a->failures++;
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

static void http_digest(const char *user, const char *pass, uint8_t out[32])
{
	gnutls_hash_hd_t hd;
	memset(out, 0, 32);
	if (gnutls_hash_init(&hd, GNUTLS_DIG_SHA256) < 0)
		return;
	gnutls_hash(hd, user, strlen(user) + 1); /* the NUL separates user and password */
	gnutls_hash(hd, pass, strlen(pass));
	gnutls_hash_deinit(hd, out);
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

/* HTTP Basic against the password file. */
static enum http_auth_verdict http_auth_basic(struct http_auth *a, struct MHD_Connection *conn,
					      const char *peer, uint64_t now, enum http_role *role,
					      char *user_out, size_t user_len)
{
	char *pass = NULL;
	char *user = MHD_basic_auth_get_username_password(conn, &pass);
	enum http_auth_verdict v = HTTP_AUTH_FAILED;
	uint8_t d[32];
	if (!user || !a->pw)
		goto out;
	http_digest(user, pass ? pass : "", d);
	const struct http_cached *hit = http_cache_find(a, d, now);
	if (hit) {
		*role = hit->role;
		snprintf(user_out, user_len, "%s", hit->user);
		v = HTTP_AUTH_OK;
		goto out;
	}
	if (http_fail_throttled(a, peer, now)) {
		a->throttled++;
		v = HTTP_AUTH_THROTTLED;
		goto out;
	}
	if (passwd_check(a->pw, user, strlen(user), pass ? pass : "", pass ? strlen(pass) : 0) ==
	    0) {
		*role = http_user_role(a, user);
		snprintf(user_out, user_len, "%s", user);
		http_cache_put(a, d, *role, user, now);
		v = HTTP_AUTH_OK;
	} else {
		http_fail_note(a, peer, now);
	}
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
			a->throttled++;
			return HTTP_AUTH_THROTTLED;
		}
		http_fail_note(a, peer, now);
		return HTTP_AUTH_FAILED;
	}
	*role = a->tokens[found].role;
	snprintf(user_out, user_len, "token#%d", found + 1);
	return HTTP_AUTH_OK;
}

enum http_auth_verdict http_auth_check(struct http_auth *a, struct MHD_Connection *conn,
				       uint64_t now_ms, enum http_role *role, char *user,
				       size_t user_len)
{
	char peer[64] = "";
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	*role = HTTP_ROLE_NONE;
	user[0] = '\0';
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		const void *addr = sa->sa_family == AF_INET6
				       ? (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr
				       : (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		inet_ntop(sa->sa_family, addr, peer, sizeof peer);
	}
	const char *hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!hdr)
		return HTTP_AUTH_MISSING;
	if (strncasecmp(hdr, "Bearer ", 7) == 0) {
		const char *tok = hdr + 7;
		while (*tok == ' ')
			tok++;
		return http_auth_bearer(a, tok, strlen(tok), peer, now_ms, role, user, user_len);
	}
	if (strncasecmp(hdr, "Basic ", 6) == 0)
		return http_auth_basic(a, conn, peer, now_ms, role, user, user_len);
	http_fail_note(a, peer, now_ms);
	return HTTP_AUTH_FAILED;
}
