/*
 * zconf.h - the auth workers' configuration keys (docs/configuration.md):
 *   midge_auth_endpoint ENDPOINT        ipc://PATH or tcp://HOST:PORT
 *   midge_auth_curve_server_key FILE    midge's CurveZMQ secret key (Z85)
 *   midge_auth_curve_worker_keys FILE   the workers' public keys, one a line
 *   midge_auth_timeout_ms N             per request (default 2000)
 *   midge_auth_on_timeout deny|allow    (default deny)
 *   midge_auth_cache_ttl SECONDS        decisions remembered (default 0: none)
 *   midge_auth_cache_size N             at most (default 10000)
 *   midge_auth_worker_queue N           requests out at once (default 10000)
 *   midge_auth_acl_cache_ttl SECONDS    `acl` answers remembered (default 60)
 *   midge_auth_acl_cache_size N         at most, all clients (default 100000)
 *   midge_auth_acl_cache_per_client N   at most, one client (default 256)
 *   midge_auth_acl_pending_per_client N `acl` requests out for one client (default 16)
 * Fail closed: a tcp:// endpoint other hosts can reach needs CurveZMQ and a
 * list of worker keys (zauth_conf_check()).
 */
#ifndef MIDGE_AUTH_ZCONF_H
#define MIDGE_AUTH_ZCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zauth_conf {
	char *endpoint;       /* NULL: no auth workers */
	char *endpoint_where; /* "file:line" of midge_auth_endpoint, or NULL */
	char *curve_server_key_file, *curve_worker_keys_file;
	uint32_t timeout_ms;
	bool on_timeout_allow;
	uint32_t cache_ttl; /* seconds */
	uint32_t cache_size;
	uint32_t queue;
	/* `acl` requests (clients whose connect answer said "acl": "ask") */
	uint32_t acl_cache_ttl; /* seconds */
	uint32_t acl_cache_size, acl_cache_per_client, acl_pending_per_client;
	/* MQTT 5 enhanced authentication, each exchange (engine_config's
	 * auth_max_rounds, auth_max_data, auth_exchange_ms) */
	uint32_t max_rounds;
	uint32_t max_data;
	uint32_t exchange_ms;
};

void zauth_conf_init(struct zauth_conf *z);
void zauth_conf_clear(struct zauth_conf *z);

/* A string-valued key of the auth sections (these and midge_jwt_*): *dst
 * replaced by a copy of v. Returns 0, or -1 with msg (empty, no memory). */
int zauth_conf_str(char **dst, const char *v, char *msg, size_t msglen, const char *key);

/* One key (where: "file:line" or NULL). Returns 0 (set), -1 with msg
 * (a bad value), and *handled says whether key was one of ours. */
int zauth_conf_set(struct zauth_conf *z, const char *key, const char *v, const char *where,
		   char *msg, size_t msglen, int *handled);

/* What only the whole file shows. Returns 0, or -1 with err (starting
 * with the endpoint's file:line when known). */
int zauth_conf_check(const struct zauth_conf *z, char *err, size_t errlen);

/* Whether host (of tcp://HOST:PORT) is a loopback address. */
bool zauth_conf_loopback(const char *endpoint);

#endif
