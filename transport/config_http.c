/*
 * config_http.c - the HTTP server's keys, midge_http_* (docs/http.md):
 * its listener, credentials, dashboard and bounds, and what a reload
 * keeps of them (conf_take_http_listener()).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "transport/config_internal.h"

void conf_http_clear(struct conf_http *h)
{
	free(h->host);
	free(h->certfile);
	free(h->keyfile);
	free(h->password_file);
	free(h->token_file);
	for (int i = 0; i < h->n_admins; i++)
		free(h->admins[i]);
	free(h->dashboard_dir);
	free(h->where);
	memset(h, 0, sizeof *h);
	h->max_connections = CONF_HTTP_DEFAULT_MAX_CONNECTIONS;
	h->sse_clients = CONF_HTTP_DEFAULT_SSE_CLIENTS;
	h->sse_buffer = CONF_HTTP_DEFAULT_SSE_BUFFER;
	h->max_body = CONF_HTTP_DEFAULT_MAX_BODY;
	h->auth_pending = CONF_HTTP_DEFAULT_AUTH_PENDING;
}

void conf_take_http_listener(struct conf *dst, struct conf *src)
{
	struct conf_http *d = &dst->http, *s = &src->http;
	char **mine[] = {&d->host, &d->certfile, &d->keyfile, &d->dashboard_dir, &d->where};
	char **theirs[] = {&s->host, &s->certfile, &s->keyfile, &s->dashboard_dir, &s->where};
	for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++) {
		free(*mine[i]);
		*mine[i] = *theirs[i];
		*theirs[i] = NULL;
	}
	d->on = s->on;
	d->port = s->port;
	d->max_connections = s->max_connections;
}

/* midge_http_* keys (docs/http.md). *handled says whether key was one. */
int conf_set_http(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		  int *handled)
{
	struct conf_http *h = &c->http;
	uint64_t n;
	static const struct conf_field strings[] = { /* char * in struct conf_http */
		{"midge_http_certfile", offsetof(struct conf_http, certfile)},
		{"midge_http_keyfile", offsetof(struct conf_http, keyfile)},
		{"midge_http_password_file", offsetof(struct conf_http, password_file)},
		{"midge_http_token_file", offsetof(struct conf_http, token_file)},
		{"midge_http_dashboard_dir", offsetof(struct conf_http, dashboard_dir)},
	};
	*handled = strncmp(key, "midge_http_", 11) == 0;
	if (!*handled)
		return 0;
	char **str = conf_field_find(h, strings, sizeof(strings) / sizeof(strings[0]), key);
	if (str) {
		if (!*v)
			return conf_fail(msg, msglen, "%s needs a path", key);
		return conf_set_str(str, v);
	}
	if (strcmp(key, "midge_http_listener") == 0) {
		/* midge_http_listener PORT [ADDRESS] */
		char port[16] = "", addr[256] = "";
		if (sscanf(v, "%15s %255s", port, addr) < 1 || conf_parse_u64(port, 65535, &n) < 0)
			return conf_fail(msg, msglen,
					 "midge_http_listener needs a port (and an address), not '%s'", v);
		h->on = true;
		h->port = (uint16_t)n;
		free(h->host);
		h->host = NULL;
		return addr[0] ? conf_set_str(&h->host, addr) : 0;
	}
	if (strcmp(key, "midge_http_admin") == 0) {
		/* midge_http_admin USER [USER...]: lines add up */
		char *copy = strdup(v), *save = NULL;
		if (!copy)
			return conf_fail(msg, msglen, "out of memory");
		int rc = 0;
		for (char *u = strtok_r(copy, " \t", &save); u; u = strtok_r(NULL, " \t", &save)) {
			if (h->n_admins >= CONF_HTTP_MAX_ADMINS) {
				rc = conf_fail(msg, msglen, "at most %d midge_http_admin users",
					       CONF_HTTP_MAX_ADMINS);
				break;
			}
			if (!(h->admins[h->n_admins] = strdup(u))) {
				rc = conf_fail(msg, msglen, "out of memory");
				break;
			}
			h->n_admins++;
		}
		free(copy);
		if (rc == 0 && !*v)
			rc = conf_fail(msg, msglen, "midge_http_admin needs user names");
		return rc;
	}
	static const struct {
		const char *key;
		uint64_t min, max;
	} nums[] = {
		{"midge_http_max_connections", 1, 65536},
		{"midge_http_sse_clients", 0, 4096},
		{"midge_http_sse_buffer", 4096, 64u << 20},
		{"midge_http_max_body", 1024, CODEC_MAX_REMAINING},
		{"midge_http_auth_pending", 1, 4096},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (strcmp(key, nums[i].key) != 0)
			continue;
		if (conf_parse_u64(v, nums[i].max, &n) < 0 || n < nums[i].min)
			return conf_fail(msg, msglen, "%s needs a number %llu..%llu, not '%s'", key,
					 (unsigned long long)nums[i].min,
					 (unsigned long long)nums[i].max, v);
		switch (i) {
		case 0: h->max_connections = (int)n; break;
		case 1: h->sse_clients = (int)n; break;
		case 2: h->sse_buffer = (uint32_t)n; break;
		case 3: h->max_body = (uint32_t)n; break;
		case 4: h->auth_pending = (int)n; break;
		}
		return 0;
	}
	return conf_fail(msg, msglen, "unknown option '%s'", key);
}
