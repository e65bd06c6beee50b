/*
 * config_listener.c - the keys of listening sockets: `listener PORT
 * [ADDR]` blocks, Mosquitto's default listener (port, bind_address), and
 * what applies to one listener (TLS files and options, WebSocket, PROXY,
 * limits, mount point). Listener keys apply to the listener opened by the
 * last `listener` line; before any `listener` line they apply to
 * Mosquitto's default listener, which `port` / `bind_address` create.
 * config.c hands keys here through conf_set_listener().
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/config_internal.h"

void conf_listener_clear(struct conf_listener *l)
{
	free(l->host);
	free(l->certfile);
	free(l->keyfile);
	free(l->cafile);
	free(l->capath);
	free(l->ciphers);
	free(l->tls_version);
	free(l->priority);
	free(l->crlfile);
	free(l->psk_hint);
	free(l->unix_path);
	free(l->http_dir);
	free(l->ws_path);
	free(l->tls_where);
	free(l->bind_interface);
	free(l->mount_point);
	free(l->password_file);
	free(l->acl_file);
	memset(l, 0, sizeof(*l));
	l->max_connections = -1;
	l->allow_anonymous = -1;
}

void conf_listeners_reset(struct conf *c)
{
	memset(c->listeners, 0, sizeof(c->listeners));
	for (int i = 0; i < CONF_MAX_LISTENERS; i++) {
		c->listeners[i].max_connections = -1;
		c->listeners[i].allow_anonymous = -1;
	}
}

void conf_take_listeners(struct conf *dst, struct conf *src)
{
	for (int i = 0; i < dst->n_listeners; i++)
		conf_listener_clear(&dst->listeners[i]);
	memcpy(dst->listeners, src->listeners, sizeof(dst->listeners));
	dst->n_listeners = src->n_listeners;
	dst->default_listener = src->default_listener;
	conf_listeners_reset(src);
	src->n_listeners = 0;
	src->default_listener = -1;
}

int conf_add_listener(struct conf *c, const char *host, uint16_t port)
{
	if (c->n_listeners >= CONF_MAX_LISTENERS)
		return -1;
	struct conf_listener *l = &c->listeners[c->n_listeners];
	conf_listener_clear(l);
	l->port = port;
	if (host && *host) {
		l->host = strdup(host);
		if (!l->host)
			return -1;
	}
	return c->n_listeners++;
}

/* The listener that listener-scope keys apply to: the open block, or the
 * default listener (created on first use, port 1883, all addresses). */
static struct conf_listener *conf_current_listener(struct conf *c)
{
	if (c->listener_open)
		return &c->listeners[c->n_listeners - 1];
	if (c->default_listener < 0) {
		int i = conf_add_listener(c, NULL, CONF_DEFAULT_PORT);
		if (i < 0)
			return NULL;
		c->default_listener = i;
	}
	return &c->listeners[c->default_listener];
}

int conf_listener_check(const struct conf_listener *l, char *err, size_t errlen)
{
	const char *what = NULL;
	/* psk_hint alone makes a TLS-PSK listener (its identity can be the
	 * user name); what needs certificates there, tls_creds_new refuses */
	bool tls = l->certfile || l->keyfile || l->psk_hint;
	if (l->http_dir && !l->websockets)
		what = "http_dir needs `protocol websockets` on the same listener";
	else if (l->ws_path && !l->websockets)
		what = "midge_websockets_path needs `protocol websockets` on the same listener";
	else if (l->ws_path && l->ws_path[0] != '/')
		what = "midge_websockets_path must start with '/'";
	else if (l->proxy_require_tls && l->proxy_protocol != 2)
		what = "proxy_protocol_v2_require_tls needs enable_proxy_protocol 2 (version 1 carries no "
		       "TLS information)";
	else if ((l->require_certificate || l->use_identity_as_username) && !tls &&
		 l->proxy_protocol != 2)
		what = "require_certificate / use_identity_as_username need certfile and keyfile (or "
		       "psk_hint), or enable_proxy_protocol 2 behind a proxy that terminates TLS";
	else if (l->unix_path && l->host)
		what = "a Unix socket listener (`listener 0 /path`) takes no bind_address";
	if (!what)
		return 0;
	if (l->unix_path)
		snprintf(err, errlen, "listener %s: %s", l->unix_path, what);
	else
		snprintf(err, errlen, "listener on port %u: %s", l->port, what);
	return -1;
}

/* accept_protocol_versions: a list of 3, 4 and 5 (MQTT 3.1, 3.1.1, 5),
 * separated by commas or blanks (Mosquitto 2.1). */
static int conf_parse_versions(const char *v, uint8_t *out, char *msg, size_t msglen)
{
	uint8_t bits = 0;
	for (const char *p = v; *p; p++) {
		if (*p == ',' || *p == ' ' || *p == '\t')
			continue;
		if ((*p != '3' && *p != '4' && *p != '5') || (p[1] && p[1] != ',' && p[1] != ' '))
			return conf_fail(msg, msglen,
					 "accept_protocol_versions needs a list of 3, 4 and 5 (MQTT 3.1, "
					 "3.1.1, 5.0), not '%s'",
					 v);
		bits |= (uint8_t)(1u << (*p - '0'));
	}
	if (!bits)
		return conf_fail(msg, msglen, "accept_protocol_versions needs at least one version");
	*out = bits;
	return 0;
}

/*
 * A key of the current listener (conf_current_listener(): created on
 * first use). Returns 0 or -1 with msg; TLS-only keys also record where
 * they were set, for conf_check().
 */
static int conf_set_listener_key(struct conf *c, const char *key, const char *v, char *msg,
				 size_t msglen)
{
	struct conf_listener *l = conf_current_listener(c);
	uint64_t n;
	if (!l)
		return conf_fail(msg, msglen, "too many listeners (at most %d)", CONF_MAX_LISTENERS);
	static const struct conf_field strings[] = { /* char * in struct conf_listener */
		{"certfile", offsetof(struct conf_listener, certfile)},
		{"keyfile", offsetof(struct conf_listener, keyfile)},
		{"cafile", offsetof(struct conf_listener, cafile)},
		{"capath", offsetof(struct conf_listener, capath)},
		{"ciphers", offsetof(struct conf_listener, ciphers)},
		{"midge_tls_priority", offsetof(struct conf_listener, priority)},
		{"crlfile", offsetof(struct conf_listener, crlfile)},
		{"psk_hint", offsetof(struct conf_listener, psk_hint)},
		{"http_dir", offsetof(struct conf_listener, http_dir)},
		{"midge_websockets_path", offsetof(struct conf_listener, ws_path)},
	};
	/* keys that only mean something on a listener with TLS of its own:
	 * conf_check() refuses them on one without a certificate (or PSK).
	 * require_certificate and use_identity_as_username may also be
	 * vouched for by a PROXY v2 header: conf_listener_check() decides. */
	static const char *const tls_keys[] = {
		"cafile", "capath", "ciphers", "midge_tls_priority", "crlfile", "tls_version", NULL,
	};
	bool tls_key = strcmp(key, "use_subject_as_username") == 0 && strcmp(v, "true") == 0;
	for (int i = 0; tls_keys[i] && !tls_key; i++)
		tls_key = strcmp(key, tls_keys[i]) == 0;
	if (tls_key && !l->tls_where) {
		char w[400];
		snprintf(w, sizeof w, "%s: %s", c->where ? c->where : "midge_config_set", key);
		if (conf_set_str(&l->tls_where, w) < 0)
			return conf_fail(msg, msglen, "out of memory");
	}
	char **str = conf_field_find(l, strings, sizeof(strings) / sizeof(strings[0]), key);
	if (str)
		return conf_set_str(str, v);
	if (strcmp(key, "bind_interface") == 0) {
		if (!*v || strlen(v) >= 16)
			return conf_fail(msg, msglen, "bind_interface needs an interface name, not '%s'", v);
		return conf_set_str(&l->bind_interface, v);
	}
	if (strcmp(key, "accept_protocol_versions") == 0)
		return conf_parse_versions(v, &l->protocol_versions, msg, msglen);
	if (strcmp(key, "mount_point") == 0) {
		/* a prefix of topics: no wildcard, at most 65535 bytes with the topic */
		if (!*v || strpbrk(v, "+#") || strlen(v) > 65535)
			return conf_fail(msg, msglen, "mount_point needs a topic prefix without + or #, "
					 "not '%s'", v);
		return conf_set_str(&l->mount_point, v);
	}
	if (strcmp(key, "tls_version") == 0) {
		if (strcmp(v, "tlsv1.2") != 0 && strcmp(v, "tlsv1.3") != 0)
			return conf_fail(msg, msglen,
					 "tls_version must be tlsv1.2 or tlsv1.3 (older versions are "
					 "not offered), not '%s'",
					 v);
		return conf_set_str(&l->tls_version, v);
	}
	bool *flag = strcmp(key, "require_certificate") == 0        ? &l->require_certificate
		     : strcmp(key, "use_identity_as_username") == 0 ? &l->use_identity_as_username
		     : strcmp(key, "use_subject_as_username") == 0  ? &l->use_subject_as_username
		     : strcmp(key, "proxy_protocol_v2_require_tls") == 0 ? &l->proxy_require_tls
		     : strcmp(key, "use_username_as_clientid") == 0 ? &l->use_username_as_clientid
								    : NULL;
	if (flag) {
		if (conf_parse_bool(v, flag) < 0)
			return conf_fail(msg, msglen, "%s needs true or false, not '%s'", key, v);
		return 0;
	}
	if (strcmp(key, "max_connections") == 0) {
		if (v && strcmp(v, "-1") == 0) {
			l->max_connections = -1;
			return 0;
		}
		if (conf_parse_u64(v, INT32_MAX, &n) < 0)
			return conf_fail(msg, msglen, "max_connections needs -1 or a count, not '%s'", v);
		l->max_connections = (int)n;
		/* The default listener's limit is also Mosquitto's global one. */
		if (!c->listener_open)
			c->max_connections = (int)n;
		return 0;
	}
	if (strcmp(key, "bind_address") == 0)
		return conf_set_str(&l->host, v);
	if (strcmp(key, "port") == 0) {
		if (conf_parse_u64(v, 65535, &n) < 0)
			return conf_fail(msg, msglen, "port needs a number 0..65535, not '%s'", v);
		l->port = (uint16_t)n;
		return 0;
	}
	if (strcmp(key, "protocol") == 0) {
		if (strcmp(v, "mqtt") != 0 && strcmp(v, "websockets") != 0)
			return conf_fail(msg, msglen, "protocol needs mqtt or websockets, not '%s'", v);
		l->websockets = strcmp(v, "websockets") == 0;
		return 0;
	}
	if (strcmp(key, "enable_proxy_protocol") == 0) {
		if (strcmp(v, "1") != 0 && strcmp(v, "2") != 0)
			return conf_fail(msg, msglen, "enable_proxy_protocol needs 1 or 2, not '%s'", v);
		l->proxy_protocol = v[0] - '0';
		return 0;
	}
	if (strcmp(key, "socket_domain") == 0) {
		if (strcmp(v, "ipv4") != 0 && strcmp(v, "ipv6") != 0)
			return conf_fail(msg, msglen, "socket_domain needs ipv4 or ipv6");
		if (!l->host)
			return conf_set_str(&l->host, strcmp(v, "ipv4") == 0 ? "0.0.0.0" : "::");
		return 0;
	}
	return conf_fail(msg, msglen, "unknown listener key '%s'", key);
}

/* Whether key is one conf_set_listener_key() takes (port and
 * bind_address aside: they name the default listener). */
static bool conf_is_listener_key(const char *key)
{
	static const char *const keys[] = {
		"certfile", "keyfile", "cafile", "capath", "ciphers", "midge_tls_priority",
		"tls_version", "require_certificate", "use_identity_as_username",
		"use_subject_as_username", "crlfile", "psk_hint",
		"max_connections", "protocol", "socket_domain", "http_dir", "midge_websockets_path",
		"enable_proxy_protocol", "proxy_protocol_v2_require_tls", "bind_interface",
		"use_username_as_clientid", "accept_protocol_versions", "mount_point", NULL,
	};
	for (int i = 0; keys[i]; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

int conf_set_listener(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		      int *handled)
{
	*handled = 1;
	if (strcmp(key, "listener") == 0) {
		/* listener PORT [ADDRESS] */
		char port[16] = "", addr[256] = "";
		uint64_t n;
		if (sscanf(v, "%15s %255s", port, addr) < 1 || conf_parse_u64(port, 65535, &n) < 0)
			return conf_fail(msg, msglen, "listener needs a port (and an address), not '%s'",
					 v);
		/* `listener 0 /path` is a Unix domain socket (Mosquitto 2.0);
		 * port 0 with an address is a TCP port the kernel picks. */
		bool unix_socket = n == 0 && strchr(addr, '/');
		int i = conf_add_listener(c, addr[0] && !unix_socket ? addr : NULL, (uint16_t)n);
		if (i < 0)
			return conf_fail(msg, msglen, "too many listeners (at most %d)",
					 CONF_MAX_LISTENERS);
		if (unix_socket && conf_set_str(&c->listeners[i].unix_path, addr) < 0)
			return conf_fail(msg, msglen, "out of memory");
		c->listener_open = true;
		return 0;
	}
	if (strcmp(key, "port") == 0 || strcmp(key, "bind_address") == 0) {
		/* Mosquitto's default listener, whatever block is open. */
		bool open = c->listener_open;
		c->listener_open = false;
		int rc = conf_set_listener_key(c, key, v, msg, msglen);
		c->listener_open = open;
		return rc;
	}
	if (conf_is_listener_key(key))
		return conf_set_listener_key(c, key, v, msg, msglen);
	if (strcmp(key, "set_tcp_nodelay") == 0) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "%s needs true or false", key);
		return 0; /* always on in midge */
	}
	*handled = 0;
	return 0;
}
