/*
 * config.h - midge's configuration: Mosquitto's file syntax and keys, the
 * engine's limits, listeners, logging, hooks.
 *
 * A struct conf is filled by conf_set() one "key value" line at a time
 * (conf_load() reads a file through it, and the files of include_dir).
 * Fail closed: a Mosquitto key midge cannot honour and whose absence would
 * weaken security or durability is an error naming what midge offers
 * instead; Mosquitto keys that change nothing a user relies on are
 * accepted with a warning; unknown keys and bad values are errors.
 * conf_check() then refuses what only the whole file shows (TLS keys on a
 * listener without a certificate). Strings are owned by the struct and
 * freed by conf_clear().
 */
#ifndef MIDGE_TRANSPORT_CONFIG_H
#define MIDGE_TRANSPORT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/chain.h"
#include "auth/zconf.h"
#include "bridge/conf.h"
#include "engine/engine.h"
#include "hooks/hooks.h"

#define CONF_MAX_LISTENERS 32
#define CONF_DEFAULT_PORT 1883

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
	bool use_identity_as_username;  /* certificate CN (or PSK identity) is the user name */
	bool use_subject_as_username;   /* certificate subject DN is the user name */
	char *crlfile;                  /* revoked client certificates */
	char *psk_hint;                 /* set: TLS-PSK with psk_file's keys */
	char *ciphers;              /* Mosquitto's cipher list (TLS 1.2), GnuTLS syntax here */
	char *tls_version;          /* tlsv1.2, tlsv1.3 */
	char *priority;             /* midge_tls_priority: a whole GnuTLS priority string */
	char *unix_path;            /* `listener 0 /path`: a Unix domain socket, not TCP */
	bool websockets;            /* protocol websockets: MQTT over WebSocket (wss with certfile) */
	char *http_dir;             /* websockets: static files served on the same listener */
	char *ws_path;              /* midge_websockets_path: the only upgrade path (NULL: any) */
	int proxy_protocol;         /* enable_proxy_protocol: 0 none, 1 or 2 */
	bool proxy_require_tls;     /* proxy_protocol_v2_require_tls */
	int line;                   /* of its `listener` line in the file (0: none) */
	char *tls_where;            /* "file:line key" of its first TLS key: checked by conf_check() */
	char *bind_interface;       /* SO_BINDTODEVICE */
	char *mount_point;          /* topics of its clients live under it */
	bool use_username_as_clientid;
	uint8_t protocol_versions;  /* accept_protocol_versions: bit 1 << level (3, 4, 5); 0 = all */
	/* per_listener_settings true: this listener's security (Mosquitto's meaning) */
	int allow_anonymous;        /* -1: not set */
	char *password_file;
	char *acl_file;
};

/* A replay log (midge_history FILTER MAX_MESSAGES [MAX_AGE_SECONDS]). */
#define CONF_MAX_HISTORY 64
struct conf_history {
	char *filter;
	uint32_t max_messages;
	uint32_t max_age_s; /* 0: no age bound */
};

enum conf_persist_sync {
	CONF_PERSIST_ACK = 0,      /* acknowledged = committed (the default) */
	CONF_PERSIST_PERIODIC = 1, /* Mosquitto-like: committed every period */
};

/* The HTTP server (http/): metrics, admin API, dashboard. Off unless
 * midge_http_listener is set. */
#define CONF_HTTP_MAX_ADMINS 32
#define CONF_HTTP_DEFAULT_MAX_CONNECTIONS 64
#define CONF_HTTP_DEFAULT_SSE_CLIENTS 16
#define CONF_HTTP_DEFAULT_SSE_BUFFER (256u * 1024u)
#define CONF_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)
#define CONF_HTTP_DEFAULT_AUTH_PENDING 8
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
	int auth_pending;           /* Basic checks waiting for the hashing pool at most */
	char *where;                /* "file:line" of midge_http_listener, for start-up errors */
};

/* Sockets accepted and still waiting for CONNECT (or its TLS handshake),
 * broker-wide: each holds a descriptor and some memory until
 * connect_timeout, so a flood of silent sockets is cut here, not at the
 * descriptor limit. */
#define CONF_DEFAULT_MAX_PENDING 10000

/* websockets_headers_size when unset or 0: the bound of a WebSocket
 * listener's HTTP request head (Mosquitto's key; libwebsockets' default
 * was 1024, too little for a browser with cookies). */
#define CONF_DEFAULT_WS_HEADERS 4096

/* Authentication sources beyond the password file (docs/auth.md):
 * midge_jwt_* and midge_auth_chain; read by transport/config_auth.c. */
struct conf_auth {
	char *jwt_key_file, *jwt_jwks_file; /* at most one: JWT is on with either */
	char *jwt_issuer, *jwt_audience, *jwt_username_claim;
	unsigned jwt_algs;          /* midge_jwt_algorithms (enum jwt_alg_bit), 0 = all */
	uint32_t jwt_leeway;        /* seconds */
	bool jwt_from_username;     /* midge_jwt_from username (default: the password) */
	bool jwt_disconnect_on_expiry; /* default true */
	char *jwt_where;            /* "file:line" of the first midge_jwt_ key */
	struct auth_chain chain;    /* midge_auth_chain, when chain_where is set */
	char *chain_where;          /* "file:line" of midge_auth_chain; NULL: not set */
};

/* The NATS connection's security keys (config_cluster.c). */
enum conf_cluster_key {
	CONF_CLUSTER_CAFILE,
	CONF_CLUSTER_CERTFILE,
	CONF_CLUSTER_KEYFILE,
	CONF_CLUSTER_CREDENTIALS,
	CONF_CLUSTER_USERNAME,
	CONF_CLUSTER_PASSWORD,
	CONF_CLUSTER_TOKEN,
	CONF_CLUSTER_KEYS
};

struct conf {
	struct engine_config engine;
	struct conf_auth auth;
	struct conf_listener listeners[CONF_MAX_LISTENERS];
	int n_listeners;
	/* The listener created by top-level `port`/`bind_address`/TLS keys
	 * (Mosquitto's default listener); -1 while there is none. */
	int default_listener;
	bool listener_open;         /* a `listener` line was seen: keys go to the last one */
	bool allow_anonymous_set;   /* allow_anonymous appeared (else Mosquitto 2's rule) */
	bool per_listener_settings; /* allow_anonymous, password_file, acl_file per listener */
	bool security_seen;         /* a security key appeared: per_listener_settings comes first */
	const char *where;          /* conf_load's "file:line" while a line is applied, else NULL */
	int include_depth;

	int max_connections;        /* global, -1 unlimited */
	int max_pending_connects;   /* sockets waiting for CONNECT, 0 = no bound */
	int io_threads;             /* midge_io_threads: -1 auto, 0 = sockets on the engine's loop */
	uint32_t sys_interval;      /* seconds, 0 = no $SYS */
	uint32_t connect_timeout;   /* seconds before CONNECT must arrive */
	uint32_t tls_handshake_timeout; /* unused separately: counted in connect_timeout */
	uint64_t max_output_bytes;  /* per connection, droppable sends refused past it */
	uint32_t ws_headers_size;   /* websockets_headers_size: bound of a request head */
	char *psk_file;             /* identity:hexkey lines for psk_hint listeners */
	unsigned auth_threads;      /* midge_auth_threads: password-check workers, 0 = from the cores */
	unsigned auth_queue;        /* midge_auth_queue: checks that may wait, 0 = 64 per worker */
	uint64_t memory_limit;      /* bytes of heap in use past which publishes are refused, 0 = none */
	char *password_file;
	char *acl_file;
	char *clientid_prefixes;    /* only client ids starting with it may connect */
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
	uint64_t hooks_queue_bytes; /* 0 = HOOKS_DEFAULT_QUEUE_BYTES */
	uint32_t hooks_max_prefixes; /* per socket; 0 = HOOKS_DEFAULT_MAX_PREFIXES */
	enum hooks_format hooks_format;
	int hooks_nice;              /* the publisher thread's nice value (Linux) */
	char *hooks_curve_secret;
	char *hooks_curve_public;
	char *node_name;

	/* the cluster (docs/cluster.md); NULL cluster_servers: a single node */
	char *cluster_servers;       /* midge_cluster */
	char *cluster_name;          /* midge_cluster_name; NULL: "midge" */
	uint64_t cluster_buffer;     /* midge_cluster_buffer; 0: the default */
	uint32_t cluster_checkpoint_ms; /* midge_cluster_checkpoint_ms (0: off) ... */
	bool cluster_checkpoint_set;    /* ... when set; else the default */
	uint64_t cluster_journal;       /* midge_cluster_journal_bytes (0: off) ... */
	bool cluster_journal_set;       /* ... when set; else the default */
	char *cluster_secure[CONF_CLUSTER_KEYS];       /* enum conf_cluster_key; NULL: unset */
	char *cluster_secure_where[CONF_CLUSTER_KEYS]; /* "file:line" of each */

	/* persistence (docs/persistence.md) */
	bool persistence;
	char *persistence_location;  /* a directory; NULL: the working directory */
	char *persistence_file;      /* NULL: midge.db */
	uint32_t autosave_interval;  /* Mosquitto's: seconds (or changes), 1800 */
	bool autosave_on_changes;
	int persist_sync;            /* enum conf_persist_sync */
	uint32_t persist_period;     /* periodic SECONDS, when given */
	bool persist_period_set;
	uint32_t persist_commit_delay_ms;
	bool persist_move_damaged;   /* midge_persist_damaged move */
	bool persist_quick_check;
	struct conf_history history[CONF_MAX_HISTORY];
	int n_history;
	struct conf_http http;
	struct zauth_conf zauth;     /* midge_auth_* (auth/zconf.h) */
	struct bridge_confs bridges; /* `connection` sections (bridge/conf.h) */
};

#define CONF_DEFAULT_PERSISTENCE_FILE "midge.db"

/* The database path: persistence_location joined with persistence_file.
 * Returns 0, or -1 when it does not fit. */
int conf_persist_path(const struct conf *c, char *buf, size_t len);

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

/* What only the whole configuration shows: TLS keys on a listener without
 * certfile and keyfile, per-listener settings without a listener.
 * Returns 0, or -1 with "file:line: why" in err. conf_load() calls it. */
int conf_check(const struct conf *c, char *err, size_t errlen);

/* Moves src's listeners into dst (whose own listeners are freed): a
 * reload keeps the listeners the broker has bound. */
void conf_take_listeners(struct conf *dst, struct conf *src);

/* Moves src's HTTP listener settings (address, port, certificate, key,
 * dashboard directory, connection limit) into dst: the running HTTP
 * server keeps them over a reload; its credentials come from dst. */
void conf_take_http_listener(struct conf *dst, struct conf *src);

/* Swaps the bridge sections of dst and src: a reload keeps the running
 * bridges' (they are read at start-up only). */
void conf_take_bridges(struct conf *dst, struct conf *src);

/* Adds a listener (the embedding API and -p). Returns its index or -1. */
int conf_add_listener(struct conf *c, const char *host, uint16_t port);

/* Whether the listener settings can be honoured together; -1 with the
 * reason (naming what to use instead) in err. Called at start-up. */
int conf_listener_check(const struct conf_listener *l, char *err, size_t errlen);

/* midge_jwt_* and midge_auth_chain (config_auth.c): *handled 0 for any
 * other key; else 0 or -1 with msg. */
int conf_set_auth(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		  int *handled);
/* Whether the whole file's auth keys go together (JWT options without a
 * key, two key sources, a chain naming a source not configured): 0, or -1
 * with "file:line: why" in err. */
int conf_check_auth(const struct conf *c, char *err, size_t errlen);
/* The chain in effect for c (auth/chain.h), after conf_check_auth(). */
void conf_auth_chain(const struct conf *c, struct auth_chain *out);
void conf_auth_clear(struct conf_auth *a);

/* midge_cluster_cafile ... midge_cluster_token (config_cluster.c):
 * *handled 0 for any other key; else 0 or -1 with msg. */
int conf_set_cluster(struct conf *c, const char *key, const char *v, char *msg, size_t msglen,
		     int *handled);
/* Whether the cluster's security keys can be honoured (used together as
 * they must be, their files readable): 0, or -1 with "file:line: why". */
int conf_check_cluster(const struct conf *c, char *err, size_t errlen);
const char *conf_cluster_key_name(int k);
void conf_cluster_clear(struct conf *c);

/* Parses the value of log_type; returns the bit or 0 if unknown. */
unsigned conf_log_type_bit(const char *name);

#endif
