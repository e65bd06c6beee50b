/*
 * security.c - the security realms (security.h): building them from a
 * configuration, and the two decisions the engine asks of them.
 */
#include "transport/security.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/jwt.h"
#include "auth/passwd.h"
#include "codec/codec.h"
#include "transport/log.h"

static void security_clear(struct security *r)
{
	passwd_unref(r->passwd);
	acl_free(r->acl);
	free(r->password_file);
	free(r->acl_file);
	memset(r, 0, sizeof *r);
}

void security_free(struct security_set *s)
{
	if (!s)
		return;
	security_clear(&s->global);
	for (int i = 0; i < CONF_MAX_LISTENERS; i++)
		security_clear(&s->own[i]);
	free(s->clientid_prefixes);
	jwt_verifier_unref(s->jwt);
	free(s);
}

static void security_acl_warn(void *user, const char *text)
{
	(void)user;
	log_warn("%s", text);
}

/* Fills r: the rule, and the files loaded. Returns 0 or -1 with err. */
static int security_realm(struct security *r, bool allow_anonymous, const char *password_file,
			  const char *acl_file, char *err, size_t errlen)
{
	r->allow_anonymous = allow_anonymous;
	if (password_file) {
		if (!(r->password_file = strdup(password_file)) ||
		    !(r->passwd = passwd_load(password_file, err, errlen)))
			return -1;
	}
	if (acl_file) {
		if (!(r->acl_file = strdup(acl_file)) ||
		    !(r->acl = acl_load(acl_file, security_acl_warn, NULL, err, errlen)))
			return -1;
	}
	return 0;
}

/* The chain and the JWT verifier (broker-wide). 0 or -1 with err. */
static int security_load_sources(struct security_set *s, const struct conf *c, char *err,
				 size_t errlen)
{
	const struct conf_auth *a = &c->auth;
	conf_auth_chain(c, &s->chain);
	s->jwt_from_username = a->jwt_from_username;
	s->jwt_disconnect = a->jwt_disconnect_on_expiry;
	if (!a->jwt_key_file && !a->jwt_jwks_file)
		return 0;
	struct jwt_opts o = {.algs = a->jwt_algs,
			     .leeway_s = a->jwt_leeway,
			     .issuer = a->jwt_issuer,
			     .audience = a->jwt_audience,
			     .username_claim = a->jwt_username_claim,
			     .key_file = a->jwt_key_file,
			     .jwks_file = a->jwt_jwks_file};
	char e[400];
	if (!(s->jwt = jwt_verifier_load(&o, e, sizeof e))) {
		snprintf(err, errlen, "%s: %s", a->jwt_where ? a->jwt_where : "JWT", e);
		return -1;
	}
	return 0;
}

struct security_set *security_load(const struct conf *c, const struct conf_listener *const *order,
				   int n, char *err, size_t errlen)
{
	struct security_set *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(err, errlen, "out of memory");
	s->per_listener = c->per_listener_settings;
	s->n_listeners = n > CONF_MAX_LISTENERS ? CONF_MAX_LISTENERS : n;
	if (security_load_sources(s, c, err, errlen) < 0)
		goto fail;
	if (c->clientid_prefixes && !(s->clientid_prefixes = strdup(c->clientid_prefixes)))
		goto fail;
	if (!s->per_listener) {
		if (security_realm(&s->global, c->engine.allow_anonymous, c->password_file, c->acl_file,
				   err, errlen) < 0)
			goto fail;
		return s;
	}
	if (c->password_file || c->acl_file) { /* conf_set() puts them in listeners */
		snprintf(err, errlen, "per_listener_settings true: password_file and acl_file belong "
				      "to listeners");
		goto fail;
	}
	for (int i = 0; i < s->n_listeners; i++) {
		const struct conf_listener *l = order[i];
		if (!l)
			continue;
		/* Mosquitto 2: unset means false once the file has listeners */
		bool anon = l->allow_anonymous > 0;
		if (security_realm(&s->own[i], anon, l->password_file, l->acl_file, err, errlen) < 0)
			goto fail;
		s->have[i] = true;
	}
	return s;
fail:
	security_free(s);
	return NULL;
}

const struct security *security_of(const struct security_set *s, uint16_t listener)
{
	if (!s->per_listener)
		return &s->global;
	if (listener == 0 || listener > s->n_listeners || !s->have[listener - 1])
		return NULL;
	return &s->own[listener - 1];
}

/* Whether source src has something to check in this CONNECT. */
static bool security_source_has(const struct security_set *s, const struct security *r, int src,
				const struct midge_str *username, const struct midge_str *password)
{
	bool named = username && username->p, pw = password && password->p;
	switch (src) {
	case AUTH_SRC_PASSWD:
		return r->passwd && named && pw;
	case AUTH_SRC_JWT: {
		const struct midge_str *t = s->jwt_from_username ? username : password;
		return s->jwt && t && t->p && jwt_token_shape(t->p, t->len);
	}
	default: /* AUTH_SRC_ZMQ: the workers are asked about every CONNECT */
		return true;
	}
}

bool security_admits(const struct security_set *s, const struct midge_client *cl)
{
	if (!security_of(s, cl->listener))
		return false;
	if (s->clientid_prefixes) {
		size_t n = strlen(s->clientid_prefixes);
		if (cl->client_id.len < n || memcmp(cl->client_id.p, s->clientid_prefixes, n) != 0)
			return false;
	}
	return true;
}

int security_connect(const struct security_set *s, const struct midge_client *cl,
		     const struct midge_str *username, const struct midge_str *password,
		     bool identity_proven, struct security_check *check)
{
	const struct security *r = security_of(s, cl->listener);
	memset(check, 0, sizeof *check);
	if (!r || !security_admits(s, cl))
		return MQTT_RC_NOT_AUTHORIZED;
	/* The certificate or PSK was the authentication; the user name is
	 * its identity and the CONNECT's password is not looked at (the
	 * workers are still asked: they see the certificate, and may pin
	 * it). */
	for (int i = 0; i < s->chain.n; i++) {
		int src = s->chain.src[i];
		if (identity_proven ? src == AUTH_SRC_ZMQ
				    : security_source_has(s, r, src, username, password))
			check->chain.src[check->chain.n++] = (uint8_t)src;
	}
	if (check->chain.n) {
		check->db = r->passwd;
		check->jwt = s->jwt;
		check->jwt_from_username = s->jwt_from_username;
		return SECURITY_CHECK_PASSWORD;
	}
	return security_undecided(s, cl, username && username->p, identity_proven);
}

int security_undecided(const struct security_set *s, const struct midge_client *cl, bool named,
		       bool identity_proven)
{
	const struct security *r = security_of(s, cl->listener);
	if (!r)
		return MQTT_RC_NOT_AUTHORIZED;
	if (identity_proven)
		return 0;
	/* Every source defers: Mosquitto's rule. */
	if (!r->passwd || !named)
		return r->allow_anonymous ? 0 : MQTT_RC_NOT_AUTHORIZED;
	/* No password (or none a source took): refused alike for every
	 * user, without hashing, so this tells nothing about who exists. */
	return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

bool security_may_stay(const struct security_set *s, const struct midge_client *cl)
{
	const struct security *r = security_of(s, cl->listener);
	if (!r)
		return false;
	/* a token, like a password, was checked at CONNECT: its expiry
	 * ends the connection (transport/clientauth.c) */
	if (!cl->username.p || (!r->passwd && !s->jwt))
		return r->allow_anonymous;
	return true;
}

int security_acl(const struct security_set *s, const struct midge_client *cl,
		 const uint8_t *topic, size_t len, enum engine_access access)
{
	const struct security *r = security_of(s, cl->listener);
	if (!r)
		return MQTT_RC_NOT_AUTHORIZED;
	if (!r->acl)
		return 0;
	struct acl_who who = {cl->client_id.p ? cl->client_id.p : "", cl->client_id.len,
			      cl->username.p, cl->username.len, cl->username.p != NULL};
	bool ok = access == ENGINE_ACCESS_SUBSCRIBE
			  ? acl_filter_readable(r->acl, &who, topic, len)
			  : acl_check(r->acl, &who, topic, len,
				      access == ENGINE_ACCESS_PUBLISH ? ACL_WRITE : ACL_READ);
	return ok ? 0 : MQTT_RC_NOT_AUTHORIZED;
}

bool security_has_acl(const struct security_set *s)
{
	if (s->jwt)
		return true; /* a token's acl claim may give a client its own rules */
	if (!s->per_listener)
		return s->global.acl != NULL;
	for (int i = 0; i < s->n_listeners; i++)
		if (s->have[i] && s->own[i].acl)
			return true;
	return false;
}

static size_t security_describe_one(const struct security *r, char *out, size_t outlen)
{
	size_t rules, users;
	acl_counts(r->acl, &rules, &users);
	int n = snprintf(out, outlen, "allow_anonymous %s, password_file %s, acl_file %s",
			 r->allow_anonymous ? "true" : "false",
			 r->password_file ? r->password_file : "none", r->acl_file ? r->acl_file : "none");
	if (n > 0 && (size_t)n < outlen && r->acl)
		n += snprintf(out + n, outlen - (size_t)n, " (%zu rules, %zu users)", rules, users);
	return n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : outlen;
}

/* "; jwt key_file F (RSA key); chain passwd,jwt" after the realms. */
static void security_describe_sources(const struct security_set *s, char *out, size_t outlen)
{
	size_t used = strlen(out);
	if (s->jwt && used < outlen) {
		char d[300];
		jwt_verifier_describe(s->jwt, d, sizeof d);
		used += (size_t)snprintf(out + used, outlen - used, "; jwt %s", d);
	}
	/* a password file alone is what the realms already say */
	for (int i = 0; (s->jwt || s->chain.n > 1) && i < s->chain.n && used < outlen; i++)
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", i ? "," : "; chain ",
					 auth_source_name((enum auth_source)s->chain.src[i]));
}

void security_describe(const struct security_set *s, char *out, size_t outlen)
{
	if (!s->per_listener) {
		security_describe_one(&s->global, out, outlen);
		security_describe_sources(s, out, outlen);
		return;
	}
	size_t used = (size_t)snprintf(out, outlen, "per listener:");
	for (int i = 0; i < s->n_listeners && used < outlen; i++) {
		if (!s->have[i])
			continue;
		used += (size_t)snprintf(out + used, outlen - used, " [%d] ", i + 1);
		if (used < outlen)
			used += security_describe_one(&s->own[i], out + used, outlen - used);
	}
	security_describe_sources(s, out, outlen);
}
