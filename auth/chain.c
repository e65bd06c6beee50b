/*
 * chain.c - midge_auth_chain (chain.h): names, parsing, and the chain in
 * effect for a configuration.
 */
#include "auth/chain.h"

#include <stdio.h>
#include <string.h>

static const char *const auth_source_names[AUTH_SRC_COUNT] = {
	[AUTH_SRC_PASSWD] = "passwd",
	[AUTH_SRC_JWT] = "jwt",
	[AUTH_SRC_ZMQ] = "zmq",
};

const char *auth_source_name(enum auth_source s)
{
	return s < AUTH_SRC_COUNT ? auth_source_names[s] : "?";
}

int auth_chain_parse(const char *text, struct auth_chain *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *p = text;
	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n) {
			int s = -1;
			for (int i = 0; i < AUTH_SRC_COUNT; i++)
				if (strlen(auth_source_names[i]) == n && memcmp(p, auth_source_names[i], n) == 0)
					s = i;
			if (s < 0) {
				snprintf(err, errlen,
					 "midge_auth_chain: unknown source '%.*s' (known: passwd, jwt, zmq)",
					 (int)(n > 40 ? 40 : n), p);
				return -1;
			}
			for (int i = 0; i < out->n; i++)
				if (out->src[i] == s) {
					snprintf(err, errlen, "midge_auth_chain: %s named twice",
						 auth_source_names[s]);
					return -1;
				}
			out->src[out->n++] = (uint8_t)s;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	if (!out->n) {
		snprintf(err, errlen, "midge_auth_chain needs sources, e.g. passwd,jwt");
		return -1;
	}
	return 0;
}

int auth_chain_resolve(const struct auth_chain *configured, bool have,
		       const struct auth_sources_present *p, struct auth_chain *out, char *err,
		       size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!have) {
		for (int i = 0; i < AUTH_SRC_COUNT; i++)
			if (p->on[i])
				out->src[out->n++] = (uint8_t)i;
		return 0;
	}
	bool zmq = false;
	for (int i = 0; i < configured->n; i++) {
		int s = configured->src[i];
		if (!p->on[s]) {
			snprintf(err, errlen, "midge_auth_chain names %s, which is not configured (%s)",
				 auth_source_names[s], p->hint[s] ? p->hint[s] : "not in this build");
			return -1;
		}
		zmq |= s == AUTH_SRC_ZMQ;
	}
	if (p->on[AUTH_SRC_ZMQ] && !zmq) {
		/* the workers would serve methods (MQTT 5 enhanced
		 * authentication) but no password: name them, or remove them */
		snprintf(err, errlen, "midge_auth_chain does not name zmq, but midge_auth_endpoint is "
				      "set: add zmq to the chain, or remove midge_auth_endpoint");
		return -1;
	}
	*out = *configured;
	return 0;
}
