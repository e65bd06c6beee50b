/*
 * config_auth.c - the configuration keys of the authentication sources
 * beyond password_file: midge_jwt_* (auth/jwt.h) and midge_auth_chain
 * (auth/chain.h). Kept apart from config.c, which only calls in here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "auth/zconf.h"
#include "transport/config.h"

void conf_auth_clear(struct conf_auth *a)
{
	free(a->jwt_key_file);
	free(a->jwt_jwks_file);
	free(a->jwt_issuer);
	free(a->jwt_audience);
	free(a->jwt_username_claim);
	free(a->jwt_where);
	free(a->chain_where);
	memset(a, 0, sizeof *a);
	a->jwt_disconnect_on_expiry = true;
}

/* Where a key was set, for the checks made once the file is read. */
static int conf_auth_where(struct conf *c, char **dst, const char *key)
{
	if (*dst)
		return 0;
	*dst = strdup(c->where ? c->where : key);
	return *dst ? 0 : -1;
}

int conf_set_auth(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		  int *handled)
{
	struct conf_auth *a = &c->auth;
	*handled = 1;
	if (strcmp(key, "midge_auth_chain") == 0) {
		if (auth_chain_parse(v, &a->chain, msg, msglen) < 0)
			return -1;
		free(a->chain_where);
		a->chain_where = NULL;
		return conf_auth_where(c, &a->chain_where, key) < 0 ? -1 : 0;
	}
	if (strncmp(key, "midge_jwt_", 10) != 0) {
		*handled = 0;
		return 0;
	}
	if (conf_auth_where(c, &a->jwt_where, key) < 0) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	const char *k = key + 10;
	if (strcmp(k, "key_file") == 0)
		return zauth_conf_str(&a->jwt_key_file, v, msg, msglen, key);
	if (strcmp(k, "jwks_file") == 0)
		return zauth_conf_str(&a->jwt_jwks_file, v, msg, msglen, key);
	if (strcmp(k, "issuer") == 0)
		return zauth_conf_str(&a->jwt_issuer, v, msg, msglen, key);
	if (strcmp(k, "audience") == 0)
		return zauth_conf_str(&a->jwt_audience, v, msg, msglen, key);
	if (strcmp(k, "username_claim") == 0)
		return zauth_conf_str(&a->jwt_username_claim, v, msg, msglen, key);
	if (strcmp(k, "algorithms") == 0) {
		char e[200];
		if (jwt_parse_algs(v, &a->jwt_algs, e, sizeof e) < 0) {
			snprintf(msg, msglen, "midge_jwt_algorithms: %s", e);
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "leeway") == 0) {
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		if (!*v || *end || n > 86400 || v[0] == '-') {
			snprintf(msg, msglen, "midge_jwt_leeway needs seconds 0..86400, not '%s'", v);
			return -1;
		}
		a->jwt_leeway = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "from") == 0) {
		if (strcmp(v, "password") != 0 && strcmp(v, "username") != 0) {
			snprintf(msg, msglen, "midge_jwt_from needs password or username, not '%s'", v);
			return -1;
		}
		a->jwt_from_username = v[0] == 'u';
		return 0;
	}
	if (strcmp(k, "disconnect_on_expiry") == 0) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
			snprintf(msg, msglen, "midge_jwt_disconnect_on_expiry needs true or false, not '%s'",
				 v);
			return -1;
		}
		a->jwt_disconnect_on_expiry = v[0] == 't';
		return 0;
	}
	snprintf(msg, msglen, "unknown option '%s' (docs/auth.md lists the midge_jwt_ keys)", key);
	return -1;
}

/* Which sources the file configures. */
static void conf_auth_present(const struct conf *c, struct auth_sources_present *p)
{
	memset(p, 0, sizeof *p);
	p->on[AUTH_SRC_PASSWD] = c->password_file != NULL;
	for (int i = 0; i < c->n_listeners; i++)
		p->on[AUTH_SRC_PASSWD] |= c->listeners[i].password_file != NULL;
	p->on[AUTH_SRC_JWT] = c->auth.jwt_key_file || c->auth.jwt_jwks_file;
	p->on[AUTH_SRC_ZMQ] = c->zauth.endpoint != NULL;
	p->hint[AUTH_SRC_PASSWD] = "set password_file";
	p->hint[AUTH_SRC_JWT] = "set midge_jwt_key_file or midge_jwt_jwks_file";
	p->hint[AUTH_SRC_ZMQ] = "set midge_auth_endpoint";
}

int conf_check_auth(const struct conf *c, char *err, size_t errlen)
{
	const struct conf_auth *a = &c->auth;
	if (a->jwt_where && !a->jwt_key_file && !a->jwt_jwks_file) {
		snprintf(err, errlen, "%s: midge_jwt_ options without a key: set midge_jwt_key_file "
				      "or midge_jwt_jwks_file",
			 a->jwt_where);
		return -1;
	}
	if (a->jwt_key_file && a->jwt_jwks_file) {
		snprintf(err, errlen, "%s: midge_jwt_key_file and midge_jwt_jwks_file both set: use one",
			 a->jwt_where);
		return -1;
	}
	if (!a->chain_where)
		return 0;
	struct auth_sources_present p;
	struct auth_chain out;
	char e[300];
	conf_auth_present(c, &p);
	if (auth_chain_resolve(&a->chain, true, &p, &out, e, sizeof e) < 0) {
		snprintf(err, errlen, "%s: %s", a->chain_where, e);
		return -1;
	}
	return 0;
}

void conf_auth_chain(const struct conf *c, struct auth_chain *out)
{
	struct auth_sources_present p;
	char e[300];
	conf_auth_present(c, &p);
	if (auth_chain_resolve(&c->auth.chain, c->auth.chain_where != NULL, &p, out, e, sizeof e) < 0)
		memset(out, 0, sizeof *out); /* conf_check_auth() refused it already */
}
