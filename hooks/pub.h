/*
 * pub.h - the event publisher's state, shared by its rooms (internal to
 * hooks/; publisher.h is the interface hooks.c uses):
 *   publisher.c   the engine thread's side: emit into the queue, wake the
 *                 hooks thread, the counters, the notes;
 *   pub_thread.c  the hooks thread: its loop, rounds of records, start
 *                 and stop;
 *   pub_sock.c    the XPUB sockets: set-up, and the subscriptions they
 *                 report (the want sets);
 *   pub_send.c    one event to the sockets that want it: the name frame,
 *                 JSON or compact frames, batches.
 *
 * Each configured endpoint is one XPUB socket with its own drop counter and
 * the prefixes its subscribers asked for. An event is rendered at most
 * once, and only when some socket has a subscriber whose prefix matches
 * "<name>" or "<name>/<topic>".
 *
 * Who touches what: the sockets, the want sets, the render buffers and the
 * t_* counters belong to the hooks thread once it runs; the engine thread
 * has seq, the e_* counters and the producer side of the queue. They share
 * the queue's positions, the want bits (written by the hooks thread when
 * subscriptions change, read by the engine thread per event), the
 * published counters and the notes, each an atomic or under notes_mu.
 */
#ifndef MIDGE_HOOKS_PUB_H
#define MIDGE_HOOKS_PUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "hooks/hooks_info.h"
#include "hooks/publisher.h"
#include "hooks/queue.h"
#include "hooks/render.h"
#include "hooks/want.h"

/* Log lines the hooks thread may leave for the engine thread. */
#define PUB_NOTES 8
#define PUB_NOTE_LEN 240

/* A batch of compact message events of one type for one socket. */
struct pub_batch {
	struct hooks_buf b;
	uint32_t count;
	size_t klen;
	uint64_t time_ms; /* of its last event */
};

struct pub_sock {
	void *sock;
	int fd;                  /* ZMQ_FD */
	uv_poll_t poll;
	struct hooks_want want;
	uint64_t dropped;    /* events this socket wanted and did not take */
	uint64_t recheck_ms; /* event time of the last retry after EAGAIN */
	struct pub_batch batch[MIDGE_EV__COUNT]; /* compact format only */
	char endpoint[256];
};

struct hooks_publisher {
	/* Set before the thread starts, read-only while it runs. */
	int n;
	struct pub_sock s[HOOKS_MAX_ENDPOINTS];
	char *node;
	enum hooks_format format;
	int nice;
	void (*want_changed)(void *ctx); /* under notes_mu: hooks_publisher_quiet */
	void *want_ctx;
	struct hooks_queue q;
	uv_thread_t thread;
	bool loop_ready;

	/* Engine thread. */
	_Alignas(HOOKS_LINE) uint64_t seq; /* events offered to the sockets */
	uint64_t e_skipped, e_dropped, e_queued;
	unsigned since_wake;

	/* Hooks thread. */
	_Alignas(HOOKS_LINE) uv_loop_t loop;
	uv_async_t wake;
	uv_idle_t more;
	uv_timer_t poll_timer;
	uint64_t busy_ms; /* loop time of the last round that read records */
	struct hooks_buf json;  /* reused for every event */
	struct hooks_buf key;   /* the name frame: "<name>" or "<name>/<topic>" */
	struct hooks_buf frame; /* a compact message event */
	uint64_t t_sent, t_rendered, t_skipped, t_dropped, t_ignored;
	bool touched; /* a ZeroMQ call since the sockets were last read */
	bool closing;

	/* Shared. */
	_Alignas(HOOKS_LINE) _Atomic uint64_t want; /* bits 0-31: all of type t; 32-63: some */
	_Atomic uint32_t want_sock[HOOKS_MAX_ENDPOINTS];
	_Atomic uint64_t a_sent, a_rendered, a_skipped, a_dropped, a_ignored;
	_Atomic size_t a_prefixes[HOOKS_MAX_ENDPOINTS];
	atomic_bool stop;
	uv_mutex_t notes_mu;
	char notes[PUB_NOTES][PUB_NOTE_LEN];
	int n_notes;
	uint64_t notes_lost;
};

/* publisher.c: leaves a line for the engine thread's log (the log is not
 * the hooks thread's); past PUB_NOTES lines only counts them. */
void hooks_pub_note(struct hooks_publisher *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* pub_sock.c: opens s, an XPUB socket bound to endpoint with cfg's
 * options (on the calling thread, so an error is reported now). Returns
 * 0, or -1 with a message in err. */
int hooks_pub_sock_open(void *zctx, struct pub_sock *s, const char *endpoint,
			const struct hooks_config *cfg, char *err, size_t errlen);
/* pub_sock.c: closes s's socket, its batches and its want set. */
void hooks_pub_sock_close(struct pub_sock *s);
/* pub_sock.c, hooks thread: reads every socket's subscription messages
 * and publishes the want bits when they changed. */
void hooks_pub_read_subs(struct hooks_publisher *p);

/* pub_send.c, hooks thread: offers one event to every socket whose
 * subscribers want it (a compact message event may wait in a batch). */
void hooks_pub_send(struct hooks_publisher *p, const struct hooks_rec_view *r);
/* pub_send.c, hooks thread: sends every batch that has events (the end
 * of a round of records). */
void hooks_pub_send_batches(struct hooks_publisher *p);

#endif
