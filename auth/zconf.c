/*
 * zconf.c - the auth workers' keys (zconf.h).
 */
#include "auth/zconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZAUTH_DEFAULT_TIMEOUT_MS 2000u
#define ZAUTH_DEFAULT_CACHE_SIZE 10000u
#define ZAUTH_DEFAULT_QUEUE 10000u

void zauth_conf_init(struct zauth_conf *z)
{
	memset(z, 0, sizeof *z);
	z->timeout_ms = ZAUTH_DEFAULT_TIMEOUT_MS;
	z->cache_size = ZAUTH_DEFAULT_CACHE_SIZE;
	z->queue = ZAUTH_DEFAULT_QUEUE;
	z->acl_cache_ttl = 60;
	z->acl_cache_size = 100000;
	z->acl_cache_per_client = 256;
	z->acl_pending_per_client = 16;
	z->max_rounds = 8;
	z->max_data = 8192;
	z->exchange_ms = 30000;
}

void zauth_conf_clear(struct zauth_conf *z)
{
	free(z->endpoint);
	free(z->endpoint_where);
	free(z->curve_server_key_file);
	free(z->curve_worker_keys_file);
	zauth_conf_init(z);
}

int zauth_conf_str(char **dst, const char *v, char *msg, size_t msglen, const char *key)
{
	if (!*v) {
		snprintf(msg, msglen, "%s needs a value", key);
		return -1;
	}
	char *s = strdup(v);
	if (!s) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

static int zauth_conf_num(uint32_t *dst, const char *v, uint32_t min, uint32_t max, char *msg,
			  size_t msglen, const char *key)
{
	char *end = NULL;
	unsigned long long n = strtoull(v, &end, 10);
	if (!*v || *end || v[0] == '-' || n < min || n > max) {
		snprintf(msg, msglen, "%s needs a number %u..%u, not '%s'", key, min, max, v);
		return -1;
	}
	*dst = (uint32_t)n;
	return 0;
}

int zauth_conf_set(struct zauth_conf *z, const char *key, const char *v, const char *where,
		   char *msg, size_t msglen, int *handled)
{
	*handled = 1;
	if (strcmp(key, "midge_auth_endpoint") == 0) {
		if (strncmp(v, "ipc://", 6) != 0 && strncmp(v, "tcp://", 6) != 0) {
			snprintf(msg, msglen, "midge_auth_endpoint needs ipc://PATH or tcp://HOST:PORT, "
					      "not '%s'", v);
			return -1;
		}
		if (zauth_conf_str(&z->endpoint, v, msg, msglen, key) < 0)
			return -1;
		free(z->endpoint_where);
		z->endpoint_where = where ? strdup(where) : NULL;
		return 0;
	}
	if (strcmp(key, "midge_auth_curve_server_key") == 0)
		return zauth_conf_str(&z->curve_server_key_file, v, msg, msglen, key);
	if (strcmp(key, "midge_auth_curve_worker_keys") == 0)
		return zauth_conf_str(&z->curve_worker_keys_file, v, msg, msglen, key);
	if (strcmp(key, "midge_auth_timeout_ms") == 0)
		return zauth_conf_num(&z->timeout_ms, v, 1, 600000, msg, msglen, key);
	if (strcmp(key, "midge_auth_cache_ttl") == 0)
		return zauth_conf_num(&z->cache_ttl, v, 0, 86400, msg, msglen, key);
	if (strcmp(key, "midge_auth_cache_size") == 0)
		return zauth_conf_num(&z->cache_size, v, 1, 10000000, msg, msglen, key);
	if (strcmp(key, "midge_auth_worker_queue") == 0)
		return zauth_conf_num(&z->queue, v, 1, 1000000, msg, msglen, key);
	if (strcmp(key, "midge_auth_acl_cache_ttl") == 0)
		return zauth_conf_num(&z->acl_cache_ttl, v, 0, 86400, msg, msglen, key);
	if (strcmp(key, "midge_auth_acl_cache_size") == 0)
		return zauth_conf_num(&z->acl_cache_size, v, 1, 10000000, msg, msglen, key);
	if (strcmp(key, "midge_auth_acl_cache_per_client") == 0)
		return zauth_conf_num(&z->acl_cache_per_client, v, 1, 100000, msg, msglen, key);
	if (strcmp(key, "midge_auth_acl_pending_per_client") == 0)
		return zauth_conf_num(&z->acl_pending_per_client, v, 1, 1000, msg, msglen, key);
	if (strcmp(key, "midge_auth_max_rounds") == 0)
		return zauth_conf_num(&z->max_rounds, v, 1, 1000, msg, msglen, key);
	if (strcmp(key, "midge_auth_max_data") == 0)
		return zauth_conf_num(&z->max_data, v, 1, 65535, msg, msglen, key);
	if (strcmp(key, "midge_auth_exchange_timeout_ms") == 0)
		return zauth_conf_num(&z->exchange_ms, v, 100, 600000, msg, msglen, key);
	if (strcmp(key, "midge_auth_on_timeout") == 0) {
		if (strcmp(v, "deny") != 0 && strcmp(v, "allow") != 0) {
			snprintf(msg, msglen, "midge_auth_on_timeout needs deny or allow, not '%s'", v);
			return -1;
		}
		z->on_timeout_allow = strcmp(v, "allow") == 0;
		return 0;
	}
	*handled = 0;
	return 0;
}

bool zauth_conf_loopback(const char *endpoint)
{
	const char *h = endpoint + 6; /* after tcp:// */
	const char *colon = strrchr(h, ':');
	size_t n = colon ? (size_t)(colon - h) : strlen(h);
	char host[256];
	if (n == 0 || n >= sizeof host)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	/* ZeroMQ's "interface;address" form binds the left part */
	char *semi = strchr(host, ';');
	if (semi)
		*semi = '\0';
	if (strncmp(host, "127.", 4) == 0)
		return strspn(host + 4, "0123456789.") == strlen(host + 4);
	return strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0 ||
	       strcmp(host, "localhost") == 0 || strcmp(host, "lo") == 0;
}

int zauth_conf_check(const struct zauth_conf *z, char *err, size_t errlen)
{
	const char *w = z->endpoint_where ? z->endpoint_where : "midge_auth_endpoint";
	bool curve = z->curve_server_key_file != NULL;
	if (!z->endpoint) {
		if (curve || z->curve_worker_keys_file) {
			snprintf(err, errlen, "midge_auth_curve_* keys without midge_auth_endpoint");
			return -1;
		}
		return 0;
	}
	if (curve != (z->curve_worker_keys_file != NULL)) {
		/* a server key alone lets anyone who knows its public half
		 * answer as a worker */
		snprintf(err, errlen,
			 "%s: midge_auth_curve_server_key and midge_auth_curve_worker_keys go "
			 "together (CurveZMQ encrypts; the worker keys say who may answer)", w);
		return -1;
	}
	if (strncmp(z->endpoint, "tcp://", 6) == 0 && !curve && !zauth_conf_loopback(z->endpoint)) {
		snprintf(err, errlen,
			 "%s: midge_auth_endpoint %s is reachable from other hosts without CurveZMQ: "
			 "anyone could answer 'allow'; set midge_auth_curve_server_key and "
			 "midge_auth_curve_worker_keys, or use ipc:// or a loopback address", w,
			 z->endpoint);
		return -1;
	}
	return 0;
}
