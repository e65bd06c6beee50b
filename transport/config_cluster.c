/*
 * config_cluster.c - the security keys of the NATS connection
 * (docs/cluster.md, "Security"): TLS (midge_cluster_cafile, _certfile,
 * _keyfile) and one way to authenticate (midge_cluster_credentials, a
 * .creds file; midge_cluster_username and _password; midge_cluster_token).
 * Kept apart from config.c, which only calls in here. Fail closed: a key
 * that cannot be honoured stops start-up with its file:line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/config.h"

/* In enum conf_cluster_key order. */
static const char *const keys[CONF_CLUSTER_KEYS] = {
	"midge_cluster_cafile",   "midge_cluster_certfile", "midge_cluster_keyfile",
	"midge_cluster_credentials", "midge_cluster_username", "midge_cluster_password",
	"midge_cluster_token",
};

const char *conf_cluster_key_name(int k)
{
	return keys[k];
}

int conf_set_cluster(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		     int *handled)
{
	*handled = 0;
	for (int k = 0; k < CONF_CLUSTER_KEYS; k++) {
		if (strcmp(key, keys[k]) != 0)
			continue;
		*handled = 1;
		if (!*v) {
			snprintf(msg, msglen, "%s needs a value", key);
			return -1;
		}
		char *nv = strdup(v), *nw = strdup(c->where ? c->where : key);
		if (!nv || !nw) {
			free(nv);
			free(nw);
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
		free(c->cluster_secure[k]);
		free(c->cluster_secure_where[k]);
		c->cluster_secure[k] = nv;
		c->cluster_secure_where[k] = nw;
		return 0;
	}
	return 0;
}

void conf_cluster_clear(struct conf *c)
{
	for (int k = 0; k < CONF_CLUSTER_KEYS; k++) {
		free(c->cluster_secure[k]);
		free(c->cluster_secure_where[k]);
		c->cluster_secure[k] = c->cluster_secure_where[k] = NULL;
	}
}

/* Whether key k's file can be read now: 0, or -1 with err. */
static int check_file(const struct conf *c, int k, char *err, size_t errlen)
{
	const char *path = c->cluster_secure[k];
	FILE *f = path ? fopen(path, "r") : NULL;
	if (!path)
		return 0;
	if (f) {
		fclose(f);
		return 0;
	}
	snprintf(err, errlen, "%s: %s %s cannot be read (%s): the NATS connection would not be "
			      "what was asked; give a readable file",
		 c->cluster_secure_where[k], keys[k], path, strerror(errno));
	return -1;
}

int conf_check_cluster(const struct conf *c, char *err, size_t errlen)
{
	char *const *v = c->cluster_secure;
	char *const *w = c->cluster_secure_where;
	int first = -1;
	for (int k = 0; k < CONF_CLUSTER_KEYS && first < 0; k++)
		if (v[k])
			first = k;
	if (first < 0)
		return 0;
	const char *why = NULL;
	int at = first;
	int methods = (v[CONF_CLUSTER_CREDENTIALS] != NULL) + (v[CONF_CLUSTER_USERNAME] != NULL) +
		      (v[CONF_CLUSTER_TOKEN] != NULL);
	if (!c->cluster_servers) {
		why = "is a cluster key, but midge_cluster is not set: add midge_cluster or remove it";
	} else if ((v[CONF_CLUSTER_CERTFILE] != NULL) != (v[CONF_CLUSTER_KEYFILE] != NULL)) {
		int k = v[CONF_CLUSTER_CERTFILE] ? CONF_CLUSTER_CERTFILE : CONF_CLUSTER_KEYFILE;
		at = k;
		why = "needs midge_cluster_certfile and midge_cluster_keyfile together";
	} else if (v[CONF_CLUSTER_CERTFILE] && !v[CONF_CLUSTER_CAFILE]) {
		at = CONF_CLUSTER_CERTFILE;
		why = "gives a client certificate but no midge_cluster_cafile to check the NATS "
		      "server's: add midge_cluster_cafile";
	} else if ((v[CONF_CLUSTER_USERNAME] != NULL) != (v[CONF_CLUSTER_PASSWORD] != NULL)) {
		int k = v[CONF_CLUSTER_USERNAME] ? CONF_CLUSTER_USERNAME : CONF_CLUSTER_PASSWORD;
		at = k;
		why = "needs midge_cluster_username and midge_cluster_password together";
	} else if (methods > 1) {
		at = v[CONF_CLUSTER_TOKEN] ? CONF_CLUSTER_TOKEN : CONF_CLUSTER_USERNAME;
		why = "sets more than one way to authenticate to NATS: use one of "
		      "midge_cluster_credentials, midge_cluster_username (+ _password), midge_cluster_token";
	}
	if (why) {
		snprintf(err, errlen, "%s: %s %s", w[at], keys[at], why);
		return -1;
	}
	if (check_file(c, CONF_CLUSTER_CAFILE, err, errlen) < 0 ||
	    check_file(c, CONF_CLUSTER_CERTFILE, err, errlen) < 0 ||
	    check_file(c, CONF_CLUSTER_KEYFILE, err, errlen) < 0 ||
	    check_file(c, CONF_CLUSTER_CREDENTIALS, err, errlen) < 0)
		return -1;
	return 0;
}
