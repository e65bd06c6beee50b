/*
 * config_log.c - where midge says what happens: log_dest and log_type
 * (Mosquitto's meaning), and the hooks' ZeroMQ endpoints and format
 * (midge_hooks_endpoint, midge_hooks_format). Their numeric bounds and
 * switches are config_limits.c's, their CURVE keys plain strings
 * (config.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/config_internal.h"

unsigned conf_log_type_bit(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} types[] = {
		{"error", CONF_LOG_ERR},          {"warning", CONF_LOG_WARNING},
		{"notice", CONF_LOG_NOTICE},      {"information", CONF_LOG_INFO},
		{"debug", CONF_LOG_DEBUG},        {"subscribe", CONF_LOG_SUBSCRIBE},
		{"unsubscribe", CONF_LOG_UNSUBSCRIBE}, {"all", CONF_LOG_ALL},
		{"websockets", 0x80},             {"none", 0x100},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(name, types[i].name) == 0)
			return types[i].bit;
	return 0;
}

/* log_dest DEST: destinations add up; "none" clears them. */
static int conf_set_log_dest(struct conf *c, const char *v, char *msg, size_t msglen)
{
		char kind[16] = "";
		sscanf(v, "%15s", kind);
		if (strcmp(kind, "stderr") == 0)
			c->log_dests |= CONF_DEST_STDERR;
		else if (strcmp(kind, "stdout") == 0)
			c->log_dests |= CONF_DEST_STDOUT;
		else if (strcmp(kind, "syslog") == 0)
			c->log_dests |= CONF_DEST_SYSLOG;
		else if (strcmp(kind, "none") == 0)
			c->log_dests = 0;
		else if (strcmp(kind, "file") == 0) {
			const char *p = v + 4;
			while (*p == ' ' || *p == '\t')
				p++;
			if (!*p)
				return conf_fail(msg, msglen, "log_dest file needs a path");
			c->log_dests |= CONF_DEST_FILE;
			return conf_set_str(&c->log_file, p);
		} else if (strcmp(kind, "topic") == 0 || strcmp(kind, "dlt") == 0) {
			snprintf(msg, msglen, "log_dest %s is not supported by midge; ignored", kind);
			return 1;
		} else
			return conf_fail(msg, msglen,
					 "log_dest needs stderr, stdout, syslog, file PATH or none, "
					 "not '%s'",
					 v);
		return 0;
}

/* log_type TYPE: the first line replaces the default set. */
static int conf_set_log_type(struct conf *c, const char *v, char *msg, size_t msglen)
{
		unsigned bit = conf_log_type_bit(v);
		if (!bit)
			return conf_fail(msg, msglen, "unknown log_type '%s'", v);
		/* The first log_type line replaces the default set, as in Mosquitto. */
		if (!(c->log_types & 0x200))
			c->log_types = 0x200;
		if (bit == 0x100)
			c->log_types = 0x200;
		else
			c->log_types |= bit & CONF_LOG_ALL;
		return 0;
}

/* midge_hooks_endpoint ENDPOINT | none: lines add up, to
 * HOOKS_MAX_ENDPOINTS; "none" turns the publisher off. */
static int conf_set_hooks_endpoint(struct conf *c, const char *v, char *msg, size_t msglen)
{
		if (!*v)
			return conf_fail(msg, msglen, "midge_hooks_endpoint needs an endpoint or none");
		if (strcmp(v, "none") == 0) {
			c->hooks_off = true;
			return 0;
		}
		if (c->n_hooks_endpoints >= HOOKS_MAX_ENDPOINTS)
			return conf_fail(msg, msglen, "at most %d midge_hooks_endpoint lines",
					 HOOKS_MAX_ENDPOINTS);
		c->hooks_endpoints[c->n_hooks_endpoints] = strdup(v);
		if (!c->hooks_endpoints[c->n_hooks_endpoints])
			return conf_fail(msg, msglen, "out of memory");
		c->n_hooks_endpoints++;
		return 0;
}

int conf_set_log(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		 int *handled)
{
	*handled = 1;
	if (strcmp(key, "log_dest") == 0)
		return conf_set_log_dest(c, v, msg, msglen);
	if (strcmp(key, "log_type") == 0)
		return conf_set_log_type(c, v, msg, msglen);
	if (strcmp(key, "midge_hooks_endpoint") == 0)
		return conf_set_hooks_endpoint(c, v, msg, msglen);
	if (strcmp(key, "midge_hooks_format") == 0) {
		if (strcmp(v, "json") == 0)
			c->hooks_format = HOOKS_FORMAT_JSON;
		else if (strcmp(v, "compact") == 0)
			c->hooks_format = HOOKS_FORMAT_COMPACT;
		else
			return conf_fail(msg, msglen, "midge_hooks_format needs json or compact, not '%s'",
					 v);
		return 0;
	}
	*handled = 0;
	return 0;
}
