/*
 * broker.h - the broker object (struct midge) the transport's rooms share,
 * and what each room offers the others:
 *
 *   conn.c      one connection while it lives: accept, read, frame, flush
 *   linger.c    how it ends: close, linger, teardown; its phases' time bounds
 *   xport.h     the connection-layer stack: tcp.c, tls.c
 *   rbuf.c      receive buffers        outq.c     output queues
 *   listener.c  listening sockets, accept
 *   glue.c      engine_io (send, close, event) and the auth glue
 *   evlog.c     log lines for events   sys.c      $SYS topics
 *   loop.c      midge_run, tick, signals, reload, shutdown, ZeroMQ polling
 *   daemon.c    pid file, privileges   api.c      the midge_* embedding API
 *   notify.c    sd_notify: ready, reloading, stopping, status, watchdog
 *   preflight.c what start-up checks before binding (midge --test-config)
 *
 * One loop thread owns all of it. main.c uses broker_set_verbose(),
 * broker_first_port(), broker_preflight() and broker_print_versions()
 * beyond include/midge.h.
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
#include "transport/notify.h"
#include "transport/outq.h"
#include "transport/rbuf.h"

struct conn;
struct engine;
struct passwd_db;
struct tls_creds;

/* Connections in one phase, oldest first (an intrusive list: the links
 * are in struct conn, a connection is on at most one list). */
struct conn_list {
	struct conn *head, *tail;
	int n;
};

struct listener {
	uv_poll_t poll; /* first: the close callback frees the listener */
	struct midge *m;
	struct listener *next;
	struct tls_creds *creds; /* NULL: plain TCP */
	int fd;
	int index; /* in conf.listeners */
	int max_connections;
	int count;
	uint16_t port;
	bool paused; /* out of file descriptors: not polled until accept_pause fires */
	char addr[INET6_ADDRSTRLEN];
};

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
	struct passwd_db *passwd;
	struct listener *listeners;
	struct conn_list pre;       /* accepted, waiting for CONNECT */
	struct conn_list closing;   /* asked to close, flushing their output */
	struct conn_list lingering; /* write side shut, discarding input */
	struct conn *dirty;         /* output to flush in the check phase */
	uv_check_t flush_check;
	uv_idle_t busy; /* active while output is left: poll must not block */
	uv_timer_t tick;
	uv_timer_t shutdown_grace;
	uv_timer_t accept_pause;
	uv_timer_t linger_timer;
	uv_poll_t hooks_polls[HOOKS_MAX_ENDPOINTS]; /* the ZeroMQ sockets' ZMQ_FD */
	int n_hooks_polls;
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
	struct sys_cache sys_load[6];
	char *sys_last[40];
	atomic_int stop_requested;
	bool running, stopping, loop_ready, verbose;
};

/* Wall clock in ms (the engine's time). */
uint64_t broker_now_ms(void);
/* Milliseconds since the broker started, for connection timestamps (32
 * bits: they only ever measure seconds between two of them). */
uint32_t broker_rel_ms(const struct midge *m, uint64_t now);

/* glue.c: creates the engine with the transport's engine_io and auth
 * once. Returns 0 or -1 on OOM. */
int glue_engine_start(struct midge *m);

/* evlog.c: the log line (if any) for one event. */
void evlog_event(const struct conf *conf, const struct midge_event *ev);

/* listener.c: binds every configured listener (localhost when there is
 * none). Returns 0, or -1 after logging why. */
int listeners_open(struct midge *m);
/* Stops listening; open connections stay. */
void listeners_close(struct midge *m);

/* sys.c: publishes the $SYS topics whose values changed. */
void sys_publish(struct midge *m, uint64_t now);
void sys_clear(struct midge *m);

/* daemon.c: the pid file and `user`. Each returns 0 or -1 after logging. */
int daemon_write_pid(struct midge *m);
int daemon_drop_privileges(struct midge *m);

/* preflight.c: for --test-config, what start-up would refuse before
 * binding (TLS files, password_file, user), each logged. Returns 0 or -1. */
int broker_preflight(struct midge *m);
/* midge --version: midge's and each library's version, read at run time. */
void broker_print_versions(FILE *out);

/* -v: every log type, to stderr as well. */
void broker_set_verbose(struct midge *m, bool on);
/* The port of a bound listener (0 if none): for port 0 listeners. */
uint16_t broker_first_port(const struct midge *m);

#endif
