/*
 * security.c - the security realms (security.h): building them from a
 * configuration, and the two decisions the engine asks of them.
 */
#include "transport/security.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "codec/codec.h"
#include "transport/log.h"
#include "auth/passwd.h"

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
		     bool identity_proven, struct passwd_db **check)
{
	const struct security *r = security_of(s, cl->listener);
	*check = NULL;
	if (!security_admits(s, cl))
		return MQTT_RC_NOT_AUTHORIZED;
	/* The certificate or PSK was the authentication; the user name is
	 * its identity and the CONNECT's password is not looked at. */
	if (identity_proven)
		return 0;
	bool named = username && username->p;
	if (!r->passwd || !named)
		return r->allow_anonymous ? 0 : MQTT_RC_NOT_AUTHORIZED;
	/* No password: refused alike for every user, without hashing, so
	 * this tells nothing about who exists. */
	if (!password || !password->p)
		return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
	*check = r->passwd;
	return SECURITY_CHECK_PASSWORD;
}

bool security_may_stay(const struct security_set *s, const struct midge_client *cl)
{
	const struct security *r = security_of(s, cl->listener);
	if (!r)
		return false;
	if (!cl->username.p || !r->passwd)
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

void security_describe(const struct security_set *s, char *out, size_t outlen)
{
	if (!s->per_listener) {
		security_describe_one(&s->global, out, outlen);
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
}
