/*
 * config.h - midge's configuration: Mosquitto's file syntax and keys, the
 * engine's limits, listeners, logging, hooks.
 *
 * A struct conf is filled by conf_set() one "key value" line at a time
 * (conf_load() reads a file through it). Keys that Mosquitto has and midge
 * does not implement yet are accepted with a warning; unknown keys and bad
 * values are errors carrying a message. Strings are owned by the struct
 * and freed by conf_clear().
 */
#ifndef MIDGE_TRANSPORT_CONFIG_H
#define MIDGE_TRANSPORT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "hooks/hooks.h"

#define CONF_MAX_LISTENERS 32
#define CONF_DEFAULT_PORT 1883
#define CONF_DEFAULT_HOOKS_ENDPOINT "tcp://127.0.0.1:5883"

enum conf_log_type {
	CONF_LOG_ERR = 1 << 0,
	CONF_LOG_WARNING = 1 << 1,
	CONF_LOG_NOTICE = 1 << 2,
	CONF_LOG_INFO = 1 << 3,
	CONF_LOG_DEBUG = 1 << 4,
	CONF_LOG_SUBSCRIBE = 1 << 5,
	CONF_LOG_UNSUBSCRIBE = 1 << 6,
	CONF_LOG_ALL = 0x7F,
};

enum conf_log_dest {
	CONF_DEST_STDERR = 1 << 0,
	CONF_DEST_STDOUT = 1 << 1,
	CONF_DEST_FILE = 1 << 2,
	CONF_DEST_SYSLOG = 1 << 3,
};

/* One listening socket (a `listener PORT [ADDR]` block). */
struct conf_listener {
	char *host;                 /* NULL: all addresses */
	uint16_t port;
	int max_connections;        /* -1: unlimited */
	char *certfile;             /* set: TLS */
	char *keyfile;
	char *cafile;
	char *capath;
	bool require_certificate;
	bool use_identity_as_username;
	char *ciphers;              /* Mosquitto's cipher list (TLS 1.2), GnuTLS syntax here */
	char *tls_version;          /* tlsv1.2, tlsv1.3 */
	char *priority;             /* midge_tls_priority: a whole GnuTLS priority string */
};

/* The HTTP server (http/): metrics, admin API, dashboard. Off unless
 * midge_http_listener is set. */
#define CONF_HTTP_MAX_ADMINS 32
#define CONF_HTTP_DEFAULT_MAX_CONNECTIONS 64
#define CONF_HTTP_DEFAULT_SSE_CLIENTS 16
#define CONF_HTTP_DEFAULT_SSE_BUFFER (256u * 1024u)
#define CONF_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)
struct conf_http {
	bool on;
	uint16_t port;
	char *host;                 /* NULL: 127.0.0.1 */
	char *certfile, *keyfile;   /* both set: https */
	char *password_file;        /* mosquitto_passwd format */
	char *token_file;           /* "TOKEN ROLE" lines */
	char *admins[CONF_HTTP_MAX_ADMINS]; /* password-file users with the admin role */
	int n_admins;
	char *dashboard_dir;        /* NULL: the installed one */
	int max_connections;
	int sse_clients;            /* open event streams at most */
	uint32_t sse_buffer;        /* bytes of events waiting per stream */
	uint32_t max_body;          /* request body bytes */
	char *where;                /* "file:line" of midge_http_listener, for start-up errors */
};

/* Sockets accepted and still waiting for CONNECT (or its TLS handshake),
 * broker-wide: each holds a descriptor and some memory until
 * connect_timeout, so a flood of silent sockets is cut here, not at the
 * descriptor limit. */
#define CONF_DEFAULT_MAX_PENDING 10000

struct conf {
	struct engine_config engine;
	struct conf_listener listeners[CONF_MAX_LISTENERS];
	int n_listeners;
	/* The listener created by top-level `port`/`bind_address`/TLS keys
	 * (Mosquitto's default listener); -1 while there is none. */
	int default_listener;
	bool listener_open;         /* a `listener` line was seen: keys go to the last one */
	bool allow_anonymous_set;   /* allow_anonymous appeared (else Mosquitto 2's rule) */

	int max_connections;        /* global, -1 unlimited */
	int max_pending_connects;   /* sockets waiting for CONNECT, 0 = no bound */
	uint32_t sys_interval;      /* seconds, 0 = no $SYS */
	uint32_t connect_timeout;   /* seconds before CONNECT must arrive */
	uint32_t tls_handshake_timeout; /* unused separately: counted in connect_timeout */
	uint64_t max_output_bytes;  /* per connection, droppable sends refused past it */
	char *password_file;
	char *pid_file;
	char *user;
	unsigned log_types;
	unsigned log_dests;
	char *log_file;
	bool log_timestamp;
	bool connection_messages;

	char *hooks_endpoints[HOOKS_MAX_ENDPOINTS];
	int n_hooks_endpoints;      /* 0 = the default endpoint */
	bool hooks_off;             /* midge_hooks_endpoint none */
	int hooks_hwm;
	char *hooks_curve_secret;
	char *hooks_curve_public;
	char *node_name;
	struct conf_http http;
};

/* Defaults (Mosquitto's where it has the key). */
void conf_init(struct conf *c);
/* Frees every string; leaves c as conf_init() made it. */
void conf_clear(struct conf *c);

/*
 * Applies one line's key and value (value may be NULL or "" for keys that
 * take none). Returns 0, 1 when accepted with a warning (written to
 * msg), or -1 with the reason in msg[0..msglen).
 */
int conf_set(struct conf *c, const char *key, const char *value, char *msg, size_t msglen);

/*
 * Reads a Mosquitto-syntax file: `key value`, `#` comments, blank lines,
 * `listener PORT [ADDR]` opening a block. Warnings go to warn_cb (may be
 * NULL) as "file:line: text". Returns 0, or -1 with "file:line: what is
 * wrong" in err.
 */
typedef void (*conf_warn_cb)(void *user, const char *text);
int conf_load(struct conf *c, const char *path, conf_warn_cb warn_cb, void *user, char *err,
	      size_t errlen);

/* Moves src's listeners into dst (whose own listeners are freed): a
 * reload keeps the listeners the broker has bound. */
void conf_take_listeners(struct conf *dst, struct conf *src);

/* Moves src's HTTP listener settings (address, port, certificate, key,
 * dashboard directory, connection limit) into dst: the running HTTP
 * server keeps them over a reload; its credentials come from dst. */
void conf_take_http_listener(struct conf *dst, struct conf *src);

/* Adds a listener (the embedding API and -p). Returns its index or -1. */
int conf_add_listener(struct conf *c, const char *host, uint16_t port);

/* Parses the value of log_type; returns the bit or 0 if unknown. */
unsigned conf_log_type_bit(const char *name);

#endif
