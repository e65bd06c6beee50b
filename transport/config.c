/*
 * config.c - Mosquitto-syntax configuration for midge.
 *
 * Listener keys (certfile, max_connections, ...) apply to the listener
 * opened by the last `listener` line; before any `listener` line they
 * apply to Mosquitto's default listener, which `port` / `bind_address`
 * create. Everything else is global.
 */
#include "transport/config.h"

#include "codec/codec.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum conf_scope { SCOPE_GLOBAL, SCOPE_LISTENER, SCOPE_IGNORED };

/* Mosquitto keys midge accepts but does not implement, whose absence
 * changes nothing a user relies on (or that another issue implements
 * now): one warning each. A trailing '_' makes a prefix. */
static const char *const conf_unsupported[] = {
	"persistent_client_expiration_", "auto_id_prefix", "dhparamfile",
	"websockets_log_level", "log_timestamp_format", "retry_interval",
	"store_clean_interval", "enable_control_api", "ocsp_data", NULL,
};

/* Mosquitto keys midge refuses (fail closed): ignoring them would weaken
 * security or lose messages. Each names what midge offers instead. */
static const struct {
	const char *key; /* a trailing '_' makes a prefix */
	const char *why;
} conf_refused[] = {
	{"plugin", "midge does not load Mosquitto plugins: it checks passwords with password_file "
		   "and topics with acl_file (docs/security.md)"},
	{"auth_plugin", "midge does not load Mosquitto plugins: it checks passwords with "
			"password_file and topics with acl_file (docs/security.md)"},
	{"global_plugin", "midge does not load Mosquitto plugins (docs/security.md)"},
	{"auth_opt_", "is an option of a Mosquitto plugin, which midge does not load: use "
		      "password_file and acl_file (docs/security.md)"},
	{"plugin_opt_", "is an option of a Mosquitto plugin, which midge does not load: use "
			"password_file and acl_file (docs/security.md)"},
	{"auth_plugin_deny_special_chars", "is an option of Mosquitto plugins, which midge does "
					   "not load (docs/security.md)"},
	{"ciphers_tls1.3", "is not read by midge: restrict TLS 1.3 suites with "
			   "midge_tls_priority (a GnuTLS priority string)"},
	{NULL, NULL},
};

static int conf_fail(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int conf_fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

static void conf_listener_clear(struct conf_listener *l)
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

void conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	engine_config_default(&c->engine);
	/* Without a configuration file anonymous clients are welcome (on
	 * localhost), as in Mosquitto 2; midge_config_load() applies the rule
	 * for files. */
	c->engine.allow_anonymous = true;
	for (int i = 0; i < CONF_MAX_LISTENERS; i++) {
		c->listeners[i].max_connections = -1;
		c->listeners[i].allow_anonymous = -1;
	}
	c->default_listener = -1;
	zauth_conf_init(&c->zauth);
	c->max_connections = -1;
	c->max_pending_connects = CONF_DEFAULT_MAX_PENDING;
	c->io_threads = -1;
	c->sys_interval = 10;
	c->connect_timeout = 10;
	c->max_output_bytes = 4u << 20;
	c->ws_headers_size = CONF_DEFAULT_WS_HEADERS;
	c->log_types = CONF_LOG_ERR | CONF_LOG_WARNING | CONF_LOG_NOTICE | CONF_LOG_INFO;
	c->log_dests = CONF_DEST_STDERR;
	c->log_timestamp = true;
	c->connection_messages = true;
	c->hooks_hwm = 10000;
	c->hooks_nice = 10;
	c->autosave_interval = 1800;
	c->persist_quick_check = true;
	c->http.max_connections = CONF_HTTP_DEFAULT_MAX_CONNECTIONS;
	c->http.sse_clients = CONF_HTTP_DEFAULT_SSE_CLIENTS;
	c->http.sse_buffer = CONF_HTTP_DEFAULT_SSE_BUFFER;
	c->http.max_body = CONF_HTTP_DEFAULT_MAX_BODY;
	c->http.auth_pending = CONF_HTTP_DEFAULT_AUTH_PENDING;
	c->auth.jwt_disconnect_on_expiry = true;
}

static void conf_http_clear(struct conf_http *h)
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

void conf_clear(struct conf *c)
{
	for (int i = 0; i < c->n_listeners; i++)
		conf_listener_clear(&c->listeners[i]);
	free(c->password_file);
	free(c->psk_file);
	free(c->acl_file);
	free(c->clientid_prefixes);
	free(c->pid_file);
	free(c->user);
	free(c->log_file);
	for (int i = 0; i < c->n_hooks_endpoints; i++)
		free(c->hooks_endpoints[i]);
	free(c->hooks_curve_secret);
	free(c->hooks_curve_public);
	free(c->node_name);
	free(c->cluster_servers);
	free(c->cluster_name);
	free(c->persistence_location);
	free(c->persistence_file);
	for (int i = 0; i < c->n_history; i++)
		free(c->history[i].filter);
	conf_http_clear(&c->http);
	conf_auth_clear(&c->auth);
	conf_cluster_clear(c);
	zauth_conf_clear(&c->zauth);
	bridge_confs_clear(&c->bridges);
	conf_init(c);
}

void conf_take_bridges(struct conf *dst, struct conf *src)
{
	struct bridge_confs t = dst->bridges;
	dst->bridges = src->bridges;
	src->bridges = t;
}

void conf_take_listeners(struct conf *dst, struct conf *src)
{
	for (int i = 0; i < dst->n_listeners; i++)
		conf_listener_clear(&dst->listeners[i]);
	memcpy(dst->listeners, src->listeners, sizeof(dst->listeners));
	dst->n_listeners = src->n_listeners;
	dst->default_listener = src->default_listener;
	memset(src->listeners, 0, sizeof(src->listeners));
	for (int i = 0; i < CONF_MAX_LISTENERS; i++) {
		src->listeners[i].max_connections = -1;
		src->listeners[i].allow_anonymous = -1;
	}
	src->n_listeners = 0;
	src->default_listener = -1;
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

static int conf_parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	if (!v || !*v || !isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end || n > max)
		return -1;
	*out = n;
	return 0;
}

static int conf_parse_bool(const char *v, bool *out)
{
	if (v && strcmp(v, "true") == 0)
		*out = true;
	else if (v && strcmp(v, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/* Mosquitto's durations: a number with h, d, w, m (month) or y. A bare
 * number is seconds. */
static int conf_parse_duration(const char *v, uint32_t *out)
{
	if (!v || !*v || !isdigit((unsigned char)*v))
		return -1;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	uint64_t mul = 1;
	if (errno)
		return -1;
	switch (*end) {
	case '\0': mul = 1; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	case 'm': mul = 30 * 86400; break;
	case 'y': mul = 365 * 86400; break;
	default: return -1;
	}
	if (*end && end[1])
		return -1;
	uint64_t s = (uint64_t)n * mul;
	*out = s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
	return 0;
}

static int conf_set_str(char **dst, const char *v)
{
	char *s = strdup(v ? v : "");
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
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

/* A key stored at an offset in a struct (struct conf or conf_listener). */
struct conf_field {
	const char *key;
	size_t off;
};

/* The field of base that key names in fields[0..n), or NULL. */
static void *conf_field_find(void *base, const struct conf_field *fields, size_t n,
			     const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, fields[i].key) == 0)
			return (char *)base + fields[i].off;
	return NULL;
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

/* Numeric engine limits: key, pointer width, maximum. */
static int conf_set_number(struct conf *c, const char *key, const char *v, char *msg,
			   size_t msglen, int *handled)
{
	struct engine_config *e = &c->engine;
	uint64_t n;
	static const struct {
		const char *key;
		uint64_t max;
	} keys[] = {
		{"max_inflight_messages", 65535},  {"max_queued_messages", UINT32_MAX},
		{"max_queued_bytes", UINT64_MAX},  {"message_size_limit", CODEC_MAX_REMAINING},
		{"max_packet_size", CODEC_MAX_REMAINING}, {"max_keepalive", 65535},
		{"sys_interval", UINT32_MAX},      {"max_topic_alias", 65535},
		{"max_qos", 2},                    {"midge_max_subscriptions", UINT32_MAX},
		{"midge_max_topic_levels", UINT32_MAX}, {"midge_max_client_id_len", 65535},
		{"midge_receive_maximum", 65535},  {"midge_max_session_expiry", UINT32_MAX},
		{"midge_max_packet_before_connect", CODEC_MAX_REMAINING},
		{"midge_max_output_bytes", UINT64_MAX}, {"midge_connect_timeout", 86400},
		{"midge_hooks_hwm", INT32_MAX},    {"max_inflight_bytes", UINT64_MAX},
		{"midge_max_sessions", UINT32_MAX}, {"midge_max_retained_messages", UINT32_MAX},
		{"midge_max_retained_bytes", UINT64_MAX}, {"midge_max_pending_connects", INT32_MAX},
		{"midge_auth_threads", 1024},      {"midge_auth_queue", 1000000},
		{"websockets_headers_size", 1u << 20},
		{"midge_hooks_queue_bytes", (uint64_t)1 << 40}, {"midge_hooks_max_prefixes", INT32_MAX},
		{"midge_hooks_nice", 19},
		{"memory_limit", UINT64_MAX},
		{"autosave_interval", UINT32_MAX}, {"midge_persist_commit_delay_ms", 1000},
		{"midge_persist_max_acks_held", UINT32_MAX},
	};
	size_t i;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i].key) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0])) {
		*handled = 0;
		return 0;
	}
	*handled = 1;
	if (conf_parse_u64(v, keys[i].max, &n) < 0)
		return conf_fail(msg, msglen, "%s needs a number 0..%llu, not '%s'", key,
				 (unsigned long long)keys[i].max, v ? v : "");
	switch (i) {
	case 0:
		/* Mosquitto: 0 means no limit; the window cannot exceed 65535. */
		e->max_inflight = n ? (uint16_t)n : 65535;
		break;
	case 1:
		e->max_queued_messages = (uint32_t)n;
		if (!n) {
			/* Mosquitto's "unlimited"; midge keeps every queue bounded */
			snprintf(msg, msglen,
				 "max_queued_messages 0 means %u messages per client in midge "
				 "(max_queued_bytes still applies)",
				 ENGINE_MAX_QUEUED);
			return 1;
		}
		break;
	case 2: e->max_queued_bytes = n; break;
	case 3:
		/* A payload bound, as in Mosquitto; max_packet_size stays the
		 * framer's whole-packet bound. */
		e->message_size_limit = (uint32_t)n;
		break;
	case 4: e->max_packet_size = n ? (uint32_t)n : CODEC_MAX_REMAINING; break;
	case 5: e->max_keepalive = (uint16_t)n; break;
	case 6: c->sys_interval = (uint32_t)n; break;
	case 7: e->topic_alias_max = (uint16_t)n; break;
	case 8: e->max_qos = (uint8_t)n; break;
	case 9: e->max_subscriptions = (uint32_t)n; break;
	case 10: e->max_topic_levels = (uint32_t)n; break;
	case 11: e->max_client_id_len = (uint32_t)n; break;
	case 12: e->receive_max = n ? (uint16_t)n : 65535; break;
	case 13: e->max_session_expiry = (uint32_t)n; break;
	case 14: e->max_packet_before_connect = (uint32_t)n; break;
	case 15: c->max_output_bytes = n; break;
	case 16: c->connect_timeout = (uint32_t)n; break;
	case 17: c->hooks_hwm = (int)n; break;
	case 18: e->max_inflight_bytes = n; break;
	case 19: e->max_sessions = (uint32_t)n; break;
	case 20: e->max_retained_messages = (uint32_t)n; break;
	case 21: e->max_retained_bytes = n; break;
	case 22: c->max_pending_connects = (int)n; break;
	case 23: c->auth_threads = (unsigned)n; break;
	case 24: c->auth_queue = (unsigned)n; break;
	case 25: c->ws_headers_size = n ? (uint32_t)n : CONF_DEFAULT_WS_HEADERS; break;
	case 26: c->hooks_queue_bytes = n; break;
	case 27: c->hooks_max_prefixes = (uint32_t)n; break;
	case 28: c->hooks_nice = (int)n; break;
	case 29: c->memory_limit = n; break;
	case 30: c->autosave_interval = (uint32_t)n; break;
	case 31: c->persist_commit_delay_ms = (uint32_t)n; break;
	case 32: e->max_acks_held = (uint32_t)n; break;
	}
	return 0;
}

static int conf_set_bool(struct conf *c, const char *key, const char *v, char *msg,
			 size_t msglen, int *handled)
{
	static const struct conf_field keys[] = { /* bool in struct conf */
		{"queue_qos0_messages", offsetof(struct conf, engine.queue_qos0_messages)},
		{"retain_available", offsetof(struct conf, engine.retain_available)},
		{"allow_zero_length_clientid", offsetof(struct conf, engine.allow_zero_length_clientid)},
		{"upgrade_outgoing_qos", offsetof(struct conf, engine.upgrade_outgoing_qos)},
		{"log_timestamp", offsetof(struct conf, log_timestamp)},
		{"connection_messages", offsetof(struct conf, connection_messages)},
		{"midge_wildcard_subscriptions", offsetof(struct conf, engine.wildcard_sub_available)},
		{"midge_subscription_identifiers", offsetof(struct conf, engine.sub_id_available)},
		{"midge_shared_subscriptions", offsetof(struct conf, engine.shared_sub_available)},
		{"midge_check_payload_format", offsetof(struct conf, engine.check_payload_format)},
		{"check_retain_source", offsetof(struct conf, engine.check_retain_source)},
		{"persistence", offsetof(struct conf, persistence)},
		{"autosave_on_changes", offsetof(struct conf, autosave_on_changes)},
		{"midge_persist_quick_check", offsetof(struct conf, persist_quick_check)},
	};
	bool *dst = conf_field_find(c, keys, sizeof(keys) / sizeof(keys[0]), key);
	if (!dst) {
		*handled = 0;
		return 0;
	}
	*handled = 1;
	if (conf_parse_bool(v, dst) < 0)
		return conf_fail(msg, msglen, "%s needs true or false, not '%s'", key, v ? v : "");
	return 0;
}

/*
 * The security keys, where Mosquitto puts them: allow_anonymous,
 * password_file and acl_file are global, or with per_listener_settings
 * true the open listener's (the default listener's before any `listener`
 * line). per_listener_settings must come before them, as Mosquitto
 * requires. *handled says whether key was one of them.
 */
static int conf_set_security(struct conf *c, const char *key, const char *v, char *msg,
			     size_t msglen, int *handled)
{
	bool anon = strcmp(key, "allow_anonymous") == 0;
	bool pw = strcmp(key, "password_file") == 0, acl = strcmp(key, "acl_file") == 0;
	*handled = 1;
	if (strcmp(key, "per_listener_settings") == 0) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "per_listener_settings needs true or false, not '%s'", v);
		if (b && c->security_seen)
			return conf_fail(msg, msglen,
					 "per_listener_settings must be set before any other security "
					 "setting (allow_anonymous, password_file, acl_file), as in Mosquitto");
		c->per_listener_settings = b;
		return 0;
	}
	if (strcmp(key, "allow_zero_length_clientid") == 0) {
		c->security_seen = true;
		if (c->per_listener_settings)
			return conf_fail(msg, msglen,
					 "allow_zero_length_clientid applies to every listener in midge, not "
					 "to one: with per_listener_settings true, leave it out");
		*handled = 0; /* an engine flag: conf_set_bool() */
		return 0;
	}
	if (!anon && !pw && !acl) {
		*handled = 0;
		return 0;
	}
	c->security_seen = true;
	if ((pw || acl) && !*v)
		return conf_fail(msg, msglen, "%s needs a path", key);
	if (!c->per_listener_settings) {
		if (anon) {
			c->allow_anonymous_set = true;
			if (conf_parse_bool(v, &c->engine.allow_anonymous) < 0)
				return conf_fail(msg, msglen, "allow_anonymous needs true or false, not '%s'", v);
			return 0;
		}
		return conf_set_str(pw ? &c->password_file : &c->acl_file, v);
	}
	struct conf_listener *l = c->listener_open	  ? &c->listeners[c->n_listeners - 1]
				  : c->default_listener >= 0 ? &c->listeners[c->default_listener]
							     : NULL;
	if (!l)
		return conf_fail(msg, msglen,
				 "with per_listener_settings true, %s belongs to a listener: put it "
				 "after the `listener` line it is for",
				 key);
	if (anon) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "allow_anonymous needs true or false, not '%s'", v);
		l->allow_anonymous = b;
		return 0;
	}
	return conf_set_str(pw ? &l->password_file : &l->acl_file, v);
}

/* A key midge refuses (fail closed): -1 with the reason, or 0 when key is
 * not one. */
static int conf_set_refused(struct conf *c, const char *key, char *msg, size_t msglen)
{
	const char *why = NULL;
	for (int i = 0; conf_refused[i].key; i++) {
		const char *k = conf_refused[i].key;
		size_t n = strlen(k);
		bool prefix = k[n - 1] == '_';
		if (conf_refused[i].why)
			why = conf_refused[i].why; /* a NULL reason repeats the one above */
		if (prefix ? strncmp(key, k, n) == 0 : strcmp(key, k) == 0) {
			if (strstr(k, "plugin") || strncmp(k, "auth_", 5) == 0)
				c->security_seen = true;
			return conf_fail(msg, msglen, "'%s' %s%s", key,
					 why[0] == 'i' && why[1] == 's' ? "" : "refused: ", why);
		}
	}
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

/* midge_persist_sync ack | periodic [SECONDS] */
static int conf_set_persist_sync(struct conf *c, const char *v, char *msg, size_t msglen)
{
	char mode[16] = "", secs[24] = "", extra[2] = "";
	uint64_t n;
	int k = sscanf(v, "%15s %23s %1s", mode, secs, extra);
	if (k == 1 && strcmp(mode, "ack") == 0) {
		c->persist_sync = CONF_PERSIST_ACK;
		return 0;
	}
	if (k >= 1 && k <= 2 && strcmp(mode, "periodic") == 0) {
		c->persist_sync = CONF_PERSIST_PERIODIC;
		c->persist_period_set = k == 2;
		if (k == 2) {
			if (conf_parse_u64(secs, UINT32_MAX, &n) < 0)
				return conf_fail(msg, msglen,
						 "midge_persist_sync periodic needs a number of seconds, "
						 "not '%s'", secs);
			c->persist_period = (uint32_t)n;
		}
		return 0;
	}
	return conf_fail(msg, msglen,
			 "midge_persist_sync needs 'ack' or 'periodic [SECONDS]', not '%s'", v);
}

/* midge_history FILTER MAX_MESSAGES [MAX_AGE_SECONDS] */
static int conf_set_history(struct conf *c, const char *v, char *msg, size_t msglen)
{
	char filter[1024] = "", max[24] = "", age[24] = "", extra[2] = "";
	uint64_t n, a = 0;
	int k = sscanf(v, "%1023s %23s %23s %1s", filter, max, age, extra);
	if (k < 2 || k > 3 || conf_parse_u64(max, UINT32_MAX, &n) < 0 || n == 0 ||
	    (k == 3 && conf_parse_u64(age, UINT32_MAX, &a) < 0))
		return conf_fail(msg, msglen,
				 "midge_history needs FILTER MAX_MESSAGES [MAX_AGE_SECONDS] (a count "
				 "from 1, seconds from 0), not '%s'", v);
	size_t fl = strlen(filter);
	if (!codec_topic_filter_valid((const uint8_t *)filter, fl) || strncmp(filter, "$share/", 7) == 0 ||
	    strncmp(filter, "$replay/", 8) == 0)
		return conf_fail(msg, msglen, "midge_history: '%s' is not a topic filter a log can keep",
				 filter);
	for (int i = 0; i < c->n_history; i++)
		if (strcmp(c->history[i].filter, filter) == 0)
			return conf_fail(msg, msglen, "midge_history: '%s' appears twice", filter);
	if (c->n_history >= CONF_MAX_HISTORY)
		return conf_fail(msg, msglen, "at most %d midge_history lines", CONF_MAX_HISTORY);
	struct conf_history *h = &c->history[c->n_history];
	h->filter = strdup(filter);
	if (!h->filter)
		return conf_fail(msg, msglen, "out of memory");
	h->max_messages = (uint32_t)n;
	h->max_age_s = (uint32_t)a;
	c->n_history++;
	return 0;
}

int conf_persist_path(const struct conf *c, char *buf, size_t len)
{
	const char *dir = c->persistence_location && *c->persistence_location ? c->persistence_location
									      : NULL;
	const char *file = c->persistence_file && *c->persistence_file ? c->persistence_file
								       : CONF_DEFAULT_PERSISTENCE_FILE;
	int n;
	if (!dir || file[0] == '/')
		n = snprintf(buf, len, "%s", file);
	else
		n = snprintf(buf, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", file);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* midge_http_* keys (docs/http.md). *handled says whether key was one. */
static int conf_set_http(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
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

/* Keys that only hold a string. Returns 0 or -1 (OOM); *handled says
 * whether key was one of them. */
static int conf_set_string(struct conf *c, const char *key, const char *v, int *handled)
{
	static const struct conf_field keys[] = { /* char * in struct conf */
		{"psk_file", offsetof(struct conf, psk_file)},
		{"clientid_prefixes", offsetof(struct conf, clientid_prefixes)},
		{"pid_file", offsetof(struct conf, pid_file)},
		{"user", offsetof(struct conf, user)},
		{"midge_node_name", offsetof(struct conf, node_name)},
		{"midge_cluster", offsetof(struct conf, cluster_servers)},
		{"midge_cluster_name", offsetof(struct conf, cluster_name)},
		{"midge_hooks_curve_secret_key", offsetof(struct conf, hooks_curve_secret)},
		{"midge_hooks_curve_public_key", offsetof(struct conf, hooks_curve_public)},
		{"persistence_location", offsetof(struct conf, persistence_location)},
		{"persistence_file", offsetof(struct conf, persistence_file)},
	};
	char **str = conf_field_find(c, keys, sizeof(keys) / sizeof(keys[0]), key);
	*handled = str != NULL;
	return str ? conf_set_str(str, v) : 0;
}

/* A Mosquitto key midge does not implement: a warning (1), or 0 when
 * its value is what midge does anyway; -1 when key is not one. */
static int conf_set_unsupported(const char *key, const char *v, char *msg, size_t msglen)
{
	(void)v;
	for (int i = 0; conf_unsupported[i]; i++) {
		size_t n = strlen(conf_unsupported[i]);
		bool prefix = conf_unsupported[i][n - 1] == '_';
		if (prefix ? strncmp(key, conf_unsupported[i], n) == 0
			   : strcmp(key, conf_unsupported[i]) == 0) {
			snprintf(msg, msglen,
				 "'%s' is a Mosquitto option midge does not support yet; ignored", key);
			return 1;
		}
	}
	return -1;
}

int conf_set(struct conf *c, const char *key, const char *value, char *msg, size_t msglen)
{
	const char *v = value ? value : "";
	int handled = 0;
	int rc;
	msg[0] = '\0';

	if (strcmp(key, "midge_cluster_buffer") == 0) {
		/* what may wait for NATS each way: at least 1 MiB */
		if (conf_parse_u64(v, (uint64_t)1 << 40, &c->cluster_buffer) < 0 ||
		    c->cluster_buffer < (1u << 20))
			return conf_fail(msg, msglen,
					 "midge_cluster_buffer needs a byte count 1048576..2^40, not '%s'", v);
		return 0;
	}
	if (strcmp(key, "midge_io_threads") == 0) {
		uint64_t n;
		if (strcmp(v, "auto") == 0) {
			c->io_threads = -1;
			return 0;
		}
		if (conf_parse_u64(v, 64, &n) < 0)
			return conf_fail(msg, msglen, "midge_io_threads needs auto or 0..64, not '%s'", v);
		c->io_threads = (int)n;
		return 0;
	}
	if (bridge_conf_is_key(key)) /* a `connection` section (bridge/conf.c) */
		return bridge_conf_set(&c->bridges, key, v, c->where, msg, msglen);
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
		rc = conf_set_listener_key(c, key, v, msg, msglen);
		c->listener_open = open;
		return rc;
	}
	if (conf_is_listener_key(key))
		return conf_set_listener_key(c, key, v, msg, msglen);

	rc = conf_set_security(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;
	rc = conf_set_number(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;
	rc = conf_set_bool(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;

	if (strcmp(key, "persistent_client_expiration") == 0) {
		if (conf_parse_duration(v, &c->engine.persistent_client_expiration) < 0)
			return conf_fail(msg, msglen,
					 "persistent_client_expiration needs a duration like 2h, 3d, "
					 "1w, 6m, 1y, not '%s'",
					 v);
		return 0;
	}
	if (strcmp(key, "log_dest") == 0)
		return conf_set_log_dest(c, v, msg, msglen);
	if (strcmp(key, "log_type") == 0)
		return conf_set_log_type(c, v, msg, msglen);
	rc = conf_set_string(c, key, v, &handled);
	if (handled)
		return rc;
	rc = conf_set_http(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;
	rc = zauth_conf_set(&c->zauth, key, v, c->where, msg, msglen, &handled);
	if (handled)
		return rc;
	if (strcmp(key, "set_tcp_nodelay") == 0) {
		bool b;
		if (conf_parse_bool(v, &b) < 0)
			return conf_fail(msg, msglen, "%s needs true or false", key);
		return 0; /* always on in midge */
	}
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
	if (strcmp(key, "include_dir") == 0)
		return conf_fail(msg, msglen, "include_dir is read from a configuration file only");
	if (conf_set_refused(c, key, msg, msglen) < 0)
		return -1;
	if (strcmp(key, "midge_persist_sync") == 0)
		return conf_set_persist_sync(c, v, msg, msglen);
	if (strcmp(key, "midge_persist_damaged") == 0) {
		if (strcmp(v, "stop") != 0 && strcmp(v, "move") != 0)
			return conf_fail(msg, msglen, "midge_persist_damaged needs stop or move, not '%s'", v);
		c->persist_move_damaged = strcmp(v, "move") == 0;
		return 0;
	}
	if (strcmp(key, "midge_history") == 0)
		return conf_set_history(c, v, msg, msglen);
	rc = conf_set_auth(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;
	rc = conf_set_cluster(c, key, v, msg, msglen, &handled);
	if (handled)
		return rc;
	rc = conf_set_unsupported(key, v, msg, msglen);
	if (rc >= 0)
		return rc;
	return conf_fail(msg, msglen, "unknown option '%s'", key);
}

static int conf_load_file(struct conf *c, const char *path, conf_warn_cb warn_cb, void *user,
			  char *err, size_t errlen);

static int conf_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* include_dir DIR: every file of DIR ending in .conf, in byte order of
 * their names, as Mosquitto reads them. At most CONF_MAX_INCLUDE files,
 * nested include_dir at most CONF_MAX_INCLUDE_DEPTH deep. */
#define CONF_MAX_INCLUDE 1024
#define CONF_MAX_INCLUDE_DEPTH 4
static int conf_include_dir(struct conf *c, const char *dir, conf_warn_cb warn_cb, void *user,
			    char *err, size_t errlen)
{
	char *names[CONF_MAX_INCLUDE];
	int n = 0, rc = 0;
	if (c->include_depth >= CONF_MAX_INCLUDE_DEPTH) {
		snprintf(err, errlen, "include_dir nested more than %d deep", CONF_MAX_INCLUDE_DEPTH);
		return -1;
	}
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "include_dir %s: cannot open: %s", dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		if (n == CONF_MAX_INCLUDE) {
			snprintf(err, errlen, "include_dir %s: more than %d .conf files", dir,
				 CONF_MAX_INCLUDE);
			rc = -1;
			break;
		}
		size_t need = strlen(dir) + len + 2;
		if (!(names[n] = malloc(need))) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
			break;
		}
		snprintf(names[n++], need, "%s/%s", dir, de->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, sizeof names[0], conf_name_cmp);
	c->include_depth++;
	for (int i = 0; i < n && rc == 0; i++)
		rc = conf_load_file(c, names[i], warn_cb, user, err, errlen);
	c->include_depth--;
	for (int i = 0; i < n; i++)
		free(names[i]);
	return rc;
}

static int conf_load_file(struct conf *c, const char *path, conf_warn_cb warn_cb, void *user,
			  char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	char msg[512];
	char where[300];
	int lineno = 0;
	int rc = 0;
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			rc = -1;
			break;
		}
		while (len && isspace((unsigned char)line[len - 1]))
			line[--len] = '\0';
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		char *key = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
		while (isspace((unsigned char)*p))
			p++;
		snprintf(where, sizeof where, "%s:%d", path, lineno);
		if (strcmp(key, "include_dir") == 0) {
			char e[400];
			if (!*p || conf_include_dir(c, p, warn_cb, user, e, sizeof e) < 0) {
				snprintf(err, errlen, "%s: %s", where, *p ? e : "include_dir needs a directory");
				rc = -1;
				break;
			}
			continue;
		}
		c->where = where;
		int r = conf_set(c, key, p, msg, sizeof(msg));
		if (r >= 0 && strcmp(key, "midge_http_listener") == 0)
			conf_set_str(&c->http.where, where);
		c->where = NULL;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", where, msg);
			rc = -1;
			break;
		}
		if (r > 0 && warn_cb) {
			char w[840];
			snprintf(w, sizeof(w), "%s: %s", where, msg);
			warn_cb(user, w);
		}
		if (strcmp(key, "listener") == 0)
			c->listeners[c->n_listeners - 1].line = lineno;
	}
	fclose(f);
	/* Listener keys come in any order within a block: whether they go
	 * together is known once the file is read. */
	for (int i = 0; rc == 0 && i < c->n_listeners; i++) {
		if (conf_listener_check(&c->listeners[i], msg, sizeof(msg)) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, c->listeners[i].line, msg);
			rc = -1;
		}
	}
	return rc;
}

int conf_load(struct conf *c, const char *path, conf_warn_cb warn_cb, void *user, char *err,
	      size_t errlen)
{
	if (conf_load_file(c, path, warn_cb, user, err, errlen) < 0)
		return -1;
	return conf_check(c, err, errlen);
}

int conf_check(const struct conf *c, char *err, size_t errlen)
{
	if (conf_check_auth(c, err, errlen) < 0 || zauth_conf_check(&c->zauth, err, errlen) < 0 ||
	    bridge_conf_check(&c->bridges, err, errlen) < 0 || conf_check_cluster(c, err, errlen) < 0)
		return -1;
	for (int i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *l = &c->listeners[i];
		if ((l->certfile != NULL) != (l->keyfile != NULL)) {
			snprintf(err, errlen,
				 "listener on port %u has %s without %s: a TLS listener needs both",
				 l->port, l->certfile ? "certfile" : "keyfile",
				 l->certfile ? "keyfile" : "certfile");
			return -1;
		}
		if (l->tls_where && !l->certfile && !l->psk_hint) {
			snprintf(err, errlen,
				 "%s needs TLS, but the listener on port %u has no certfile and keyfile: "
				 "it would accept plain TCP; add them, or remove the TLS keys",
				 l->tls_where, l->port);
			return -1;
		}
	}
	return 0;
}
