/*
 * broker.h - the broker object (struct midge) the transport's rooms share,
 * and what each room offers the others:
 *
 *   conn.c      a connection's engine half: lifetime, output, time bounds;
 *               conn_input.c what the I/O threads report (framing);
 *               conn_accept.c accept, limits, the layer stack
 *   sock.c      its socket half, on an I/O thread: poll, read, write
 *   linger.c    how the socket half ends: shut, linger, teardown
 *   iothr.c     the I/O threads and the records between them and the engine
 *   ioq.c       the record queue      chunk.c    input chunks
 *   xport.h     the connection-layer stack: tcp.c, proxy.c, tls.c, ws.c
 *               (ws_http.c the upgrade, ws_frame.c the frames)
 *   rbuf.c      receive buffers        outq.c     output queues
 *   listener.c  listening sockets, accept
 *   glue.c      engine_io (send, close, event)
 *   auth.c      authentication: password checks on the worker pool, pending
 *               CONNECTs, TLS identities
 *   evlog.c     log lines for events   sys.c      $SYS topics
 *   loop.c      midge_run, tick, signals, reload, shutdown, ZeroMQ polling
 *   daemon.c    pid file, privileges   api.c      the midge_* embedding API
 *   notify.c    sd_notify: ready, reloading, stopping, status, watchdog
 *   preflight.c what start-up checks before binding (midge --test-config)
 *
 * The engine thread (the loop midge_run runs) owns all of it but the
 * socket halves of connections, which their I/O threads own (iothr.h).
 * main.c uses broker_set_verbose(), broker_first_port(),
 * broker_preflight() and broker_print_versions() beyond include/midge.h.
 */
#ifndef MIDGE_TRANSPORT_BROKER_H
#define MIDGE_TRANSPORT_BROKER_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "hooks/hooks.h"
#include "midge.h"
#include "transport/config.h"
#include "transport/latency.h"
#include "transport/notify.h"
#include "transport/outq.h"
#include "transport/rbuf.h"

struct auth_pool;
struct clientauth;
struct bridges;
struct conn;
struct engine;
struct iothr;
struct midge_client;
struct midge_str;
struct persist;
struct security_set;
struct tls_creds;
struct ws_conf;
struct http;

/* Connections in one phase, oldest first (an intrusive list: the links
 * are in struct conn, a connection is on at most one list). */
struct conn_list {
	struct conn *head, *tail;
	int n;
};

/* Both ends in O(1); the caller's thread owns the list (the engine's
 * phase lists, an I/O thread's lingering list). */
void conn_list_append(struct conn_list *l, struct conn *c);
void conn_list_remove(struct conn_list *l, struct conn *c);

struct listener {
	uv_poll_t poll; /* first: the close callback frees the listener */
	struct midge *m;
	struct listener *next;
	struct tls_creds *creds; /* NULL: plain TCP */
	struct ws_conf *ws;      /* NULL: MQTT straight on the stream */
	char *unix_path;         /* a Unix domain socket's path (removed when closed) */
	int proxy;               /* enable_proxy_protocol: 0, 1 or 2 */
	bool proxy_require_tls;
	bool proxy_require_cert; /* require_certificate on a listener without certfile */
	bool proxy_identity;     /* use_identity_as_username likewise */
	int fd;
	int index; /* in conf.listeners */
	int max_connections;
	int count;    /* its connections: a closed listener is freed when the last ends */
	bool closed;  /* its handle is closed (listeners_close): freed with the last connection */
	uint8_t versions;           /* accept_protocol_versions (bits), 0 = all */
	bool username_as_clientid;  /* use_username_as_clientid */
	char *mount_point;          /* NULL: none */
	uint16_t port;
	bool paused; /* out of file descriptors: not polled until accept_pause fires */
	char addr[INET6_ADDRSTRLEN];
};

/* sys.c's cache of the values last published: one slot per topic, the
 * store's topics (persist_sys) in a block of their own. */
#define SYS_SLOT_STORE 52
#define SYS_STORE_SLOTS 10
#define SYS_SLOT_PAUSES (SYS_SLOT_STORE + SYS_STORE_SLOTS)
#define SYS_SLOT_CLUSTER (SYS_SLOT_PAUSES + 1)
#define SYS_CLUSTER_SLOTS 10

struct sys_cache {
	double load[3];
	uint64_t last;
};

struct midge {
	uv_loop_t loop;
	struct conf conf;
	char *conf_path;
	struct engine *engine;
	struct hooks *hooks;
	struct security_set *sec;     /* who may connect and what they may do (security.h) */
	struct auth_pool *auth_pool;  /* password checks off the loop (auth.c) */
	uv_async_t auth_async;        /* ... finished ones wake the loop */
	uint64_t auth_busy_logged_ms; /* refusals "server busy": the last line ... */
	uint64_t auth_busy;           /* ... and those since */
	struct clientauth *clientauth; /* clients' own rules and token expiry (clientauth.h) */
	struct zauth *zauth;          /* auth workers over ZeroMQ (zauth.c), NULL when off */
	struct listener *listeners;
	struct conn_list pre;       /* accepted, waiting for CONNECT */
	struct conn_list closing;   /* asked to close, flushing their output */
	struct conn **dirty;        /* news for their I/O threads, passed on in the check phase */
	int n_dirty, cap_dirty;
	struct iothr **io;          /* the I/O threads (one inline with midge_io_threads 0) */
	int n_io;
	unsigned next_io;           /* round robin of accepted connections */
	uv_async_t io_wake;         /* an I/O thread reported */
	uv_check_t flush_check;
	uv_idle_t busy; /* active while output is left: poll must not block */
	uv_timer_t tick;
	uv_timer_t shutdown_grace;
	uv_timer_t accept_pause;
	uv_async_t stop_async;
	uv_signal_t sig_int, sig_term, sig_hup;
	struct notify notify; /* the service manager's view (notify.c) */
	struct rbuf_pool rbufs;
	struct outbox_pool outboxes;
	int n_conns;
	uint64_t started_ms;
	uint64_t last_sys_ms;
	uint64_t last_hooks_check_ms;
	uint64_t hooks_dropped_logged; /* hooks_dropped() when last logged */
	uint64_t accept_error_logged_ms;
	uint64_t accept_refused_logged_ms; /* conn_over_limit's last log line ... */
	uint64_t accept_refused;           /* ... and the refusals since */
	struct sys_cache sys_load[9];
	char *sys_last[SYS_SLOT_CLUSTER + SYS_CLUSTER_SLOTS]; /* the last value of each $SYS topic */
	struct persist *persist;    /* NULL without persistence */
	struct cluster *cluster;    /* NULL without midge_cluster */
	struct latency lat;         /* delivery and auth latency (latency.h) */
	uint64_t sockets_accepted;  /* for $SYS load/sockets */
	uint64_t connects;          /* CONNECTs accepted, for $SYS load/connections */
	struct http *http;          /* the HTTP server (http/http.h), NULL when off */
	struct bridges *bridges;    /* links to other brokers (bridge/bridge.h), NULL when none */
	atomic_int stop_requested;
	bool running, stopping, loop_ready, verbose;
	bool memory_full; /* memory_limit reached at the last tick */
};

/* Wall clock in ms (the engine's time). */
uint64_t broker_now_ms(void);
/* Milliseconds since the broker started, for connection timestamps (32
 * bits: they only ever measure seconds between two of them). */
uint32_t broker_rel_ms(const struct midge *m, uint64_t now);

/* glue.c: creates the engine with the transport's engine_io and auth
 * once. Returns 0 or -1 on OOM. */
int glue_engine_start(struct midge *m);
/* Once per loop pass: tells the engine which message events anyone
 * (callbacks, ZeroMQ subscribers, the debug log) consumes now, so that
 * the others are never built (engine_set_event_mask). */
void glue_event_mask(struct midge *m);
/* glue.c: the engine configuration the transport hands the engine: the
 * file's, with allow_anonymous left to the security realms. */
void glue_engine_config(const struct conf *c, struct engine_config *out);

/* auth.c: the worker pool and its wake-up (after the loop is set up),
 * and their end (before the loop's handles close). 0 or -1. */
int auth_start(struct midge *m);
void auth_stop(struct midge *m);
/* engine_auth.connect and .connect_cancel (see engine.h). */
int auth_connect(void *ctx, const struct midge_client *client, const struct midge_str *username,
		 const struct midge_str *password);
void auth_connect_cancel(void *ctx, const struct midge_client *client);
/*
 * A CONNECT's walk along midge_auth_chain (auth.c), handed to the auth
 * workers for a zmq link (zauth.c) and back: auth_check_resume() goes on
 * after the workers deferred (the next source, or Mosquitto's rule) and
 * gives the engine the decision when it has one; auth_check_drop() frees
 * a walk the workers decided or that was cancelled (NULL: nothing).
 * Engine thread only.
 */
struct auth_check;
struct engine_conn;
void auth_check_resume(struct midge *m, struct engine_conn *ec, struct auth_check *k);
void auth_check_drop(struct auth_check *k);
/* engine_auth.enhanced: MQTT 5 enhanced authentication, served by the
 * auth workers (0x8C without them). */
int auth_enhanced(void *ctx, const struct midge_client *client, enum engine_auth_step step,
		  const struct midge_str *method, const struct midge_str *data);

/* evlog.c: the log line (if any) for one event. */
void evlog_event(const struct conf *conf, const struct midge_event *ev);

/* listener.c: binds every configured listener (localhost when there is
 * none). Returns 0, or -1 after logging why. */
int listeners_open(struct midge *m);
/* Frees a closed listener once its last connection has ended. */
void listener_free(struct listener *l);
/* Stops listening; open connections stay. */
void listeners_close(struct midge *m);

/* sys.c: publishes the $SYS topics whose values changed. */
void sys_publish(struct midge *m, uint64_t now);
void sys_clear(struct midge *m);
/* One $SYS value through sys.c's cache slot (published when it changed). */
typedef void (*sys_put_fn)(struct midge *m, int slot, const char *topic, const char *fmt, ...);

/* persist.c: the store on the loop. persist_start declares the replay
 * logs and, with persistence on, opens the store (recovery) before the
 * listeners; returns 0 or -1 after logging why. persist_pass at the end of
 * every loop pass; persist_quiet before the loop closes its handles;
 * persist_stop once every connection is gone (the final commit). */
int persist_start(struct midge *m);
void persist_pass(struct midge *m);
void persist_quiet(struct midge *m);
void persist_stop(struct midge *m);
/* SIGHUP: keeps the running persistence settings in the new conf nc,
 * warning when the file changed them (they need a restart). */
void persist_reload(struct midge *m, struct conf *nc);
/* The $SYS/broker/midge/store/ topics from cache slot `slot` on (10). */
void persist_sys(struct midge *m, uint64_t now, sys_put_fn put, int slot);

/* clusterlink.c: the cluster (cluster/) on the loop. cluster_link_start
 * after the engine and before persist_start (0, or -1 after logging why:
 * start-up stops); cluster_link_quiet before the loop closes its
 * handles; cluster_link_free after; cluster_link_sys: the
 * $SYS/broker/midge/cluster/ topics from slot on (SYS_CLUSTER_SLOTS). */
int cluster_link_start(struct midge *m);
void cluster_link_quiet(struct midge *m);
void cluster_link_free(struct midge *m);
void cluster_link_sys(struct midge *m, sys_put_fn put, int slot);
/* Every tick: this node's connected clients, for the cluster summary. */
void cluster_link_tick(struct midge *m);
/* SIGHUP: keeps the running cluster settings in the new conf nc, warning
 * when the file changed them. */
void cluster_link_reload(struct midge *m, struct conf *nc);

/* daemon.c: the pid file and `user`. Each returns 0 or -1 after logging. */
int daemon_write_pid(struct midge *m);
int daemon_drop_privileges(struct midge *m);

/* loop.c: the next loop pass comes without waiting in poll (work was
 * queued from outside a loop callback's settling). */
void broker_keep_busy(struct midge *m);
/* loop.c: (re)builds the security realms from m->conf (midge_run, and
 * midge_config_set while running). Returns 0 or -1 after logging why. */
int broker_security_start(struct midge *m);
/* loop.c: what SIGHUP does: the configuration file read again and applied
 * (listeners stay). Returns 0, or -1 with why in err (the running
 * configuration is kept). */
int broker_reload(struct midge *m, char *err, size_t errlen);
/* preflight.c: for --test-config, what start-up would refuse before
 * binding (TLS files, password_file, user), each logged. Returns 0 or -1. */
int broker_preflight(struct midge *m);
/* midge --version: midge's and each library's version, read at run time. */
void broker_print_versions(FILE *out);

/* -v: every log type, to stderr as well. */
void broker_set_verbose(struct midge *m, bool on);
/* main.c's -p: listeners the configuration defines, and whether it set
 * allow_anonymous. */
int broker_listener_count(const struct midge *m);
bool broker_allow_anonymous_set(const struct midge *m);

/* The port of a bound listener (0 if none): for port 0 listeners. */
uint16_t broker_first_port(const struct midge *m);

#endif
