/*
 * config.c - Mosquitto-syntax configuration for midge: the file reader
 * (include_dir too), the dispatcher that hands each key to the room that
 * owns it (config_internal.h lists them), the value parsers the rooms
 * share, and the checks only the whole file allows (conf_check()).
 */
#include "transport/config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/config_internal.h"

/* Mosquitto keys midge accepts but does not implement, whose absence
 * changes nothing a user relies on (or that another issue implements
 * now): one warning each. A trailing '_' makes a prefix. */
static const char *const conf_unsupported[] = {
	"persistent_client_expiration_", "auto_id_prefix", "dhparamfile",
	"websockets_log_level", "log_timestamp_format", "retry_interval",
	"store_clean_interval", "enable_control_api", "ocsp_data", NULL,
};

int conf_fail(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
	return -1;
}

void conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	engine_config_default(&c->engine);
	/* Without a configuration file anonymous clients are welcome (on
	 * localhost), as in Mosquitto 2; midge_config_load() applies the rule
	 * for files. */
	c->engine.allow_anonymous = true;
	conf_listeners_reset(c);
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
	conf_http_clear(&c->http); /* its defaults; nothing to free yet */
	c->auth.jwt_disconnect_on_expiry = true;
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

int conf_parse_u64(const char *v, uint64_t max, uint64_t *out)
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

int conf_parse_bool(const char *v, bool *out)
{
	if (v && strcmp(v, "true") == 0)
		*out = true;
	else if (v && strcmp(v, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

int conf_set_str(char **dst, const char *v)
{
	char *s = strdup(v ? v : "");
	if (!s)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* The field of base that key names in fields[0..n), or NULL. */
void *conf_field_find(void *base, const struct conf_field *fields, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, fields[i].key) == 0)
			return (char *)base + fields[i].off;
	return NULL;
}

/* Keys that only hold a string. Returns 0 or -1 (OOM); *handled says
 * whether key was one of them. */
static int conf_set_string(struct conf *c, const char *key, const char *v, char *msg,
			   size_t msglen, int *handled)
{
	(void)msg;
	(void)msglen;
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
	/* Each key belongs to one room; the order only matters for
	 * allow_zero_length_clientid, which the security room checks before
	 * the limits room stores it. */
	static const conf_room_set_fn rooms[] = {
		conf_set_listener, conf_set_security, conf_set_limits, conf_set_log,
		conf_set_string,   conf_set_http,     conf_set_persist, conf_set_auth,
	};
	const char *v = value ? value : "";
	int handled = 0;
	int rc;
	msg[0] = '\0';

	if (bridge_conf_is_key(key)) /* a `connection` section (bridge/conf.c) */
		return bridge_conf_set(&c->bridges, key, v, c->where, msg, msglen);
	if (strcmp(key, "include_dir") == 0)
		return conf_fail(msg, msglen, "include_dir is read from a configuration file only");
	for (size_t i = 0; i < sizeof(rooms) / sizeof(rooms[0]); i++) {
		rc = rooms[i](c, key, v, msg, msglen, &handled);
		if (handled)
			return rc;
	}
	rc = zauth_conf_set(&c->zauth, key, v, c->where, msg, msglen, &handled);
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

/*
 * Applies path's lines through conf_set() (include_dir through
 * conf_include_dir()), then checks each listener's keys together.
 * Returns 0, or -1 with "file:line: why" in err; warnings go to warn_cb.
 * c keeps what the lines before an error set.
 */
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
