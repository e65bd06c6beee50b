/*
 * publisher.h - the ZeroMQ event publisher and the thread that owns it
 * (internal to hooks/; hooks.c is its only user).
 *
 * The engine thread calls emit (a bit test, and a record into the queue
 * when some socket wants the event) and flush once per loop pass. The
 * hooks thread reads the records, matches them against each socket's
 * subscriptions, renders them and sends them; it alone touches the
 * ZeroMQ sockets, from the moment it starts until it is joined.
 */
#ifndef MIDGE_HOOKS_PUBLISHER_H
#define MIDGE_HOOKS_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"
#include "midge.h"

struct hooks_publisher;

#include "hooks/hooks_info.h"

/* printf into err[0..errlen) (nothing when err is NULL). */
void hooks_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Binds the sockets (on the calling thread, so that an error is reported
 * now) and starts the thread. zctx is the ZeroMQ context. NULL with a
 * message in err when a socket cannot be set up or the thread not started.
 */
struct hooks_publisher *hooks_publisher_start(void *zctx, const struct hooks_config *cfg,
					      char *err, size_t errlen);
/* Lets the thread send what is queued, joins it, gives back what records
 * held, closes the sockets. The counters stay readable until
 * hooks_publisher_free(). NULL does nothing. */
void hooks_publisher_stop(struct hooks_publisher *p);
void hooks_publisher_free(struct hooks_publisher *p);

/* Engine thread. */
void hooks_publisher_emit(struct hooks_publisher *p, const struct midge_event *ev, void *msg);
void hooks_publisher_flush(struct hooks_publisher *p);

/* No want_changed call starts after this returns (any thread). */
void hooks_publisher_quiet(struct hooks_publisher *p);
/* Bit t: some subscriber of some socket may want events of type t (all
 * of them or some topics), as the publisher thread last published it. */
uint32_t hooks_publisher_types(const struct hooks_publisher *p);
void hooks_publisher_counts(const struct hooks_publisher *p, struct hooks_counts *c);
int hooks_publisher_count(const struct hooks_publisher *p);
const char *hooks_publisher_endpoint(const struct hooks_publisher *p, int i);
size_t hooks_publisher_prefixes(const struct hooks_publisher *p, int i);
/* Engine thread: waits until the thread has read every record (at most
 * timeout_ms). Returns true when it has. */
bool hooks_publisher_idle(struct hooks_publisher *p, int timeout_ms);
/* Engine thread: hands each log line the thread left to cb. */
void hooks_publisher_notes(struct hooks_publisher *p, void (*cb)(void *ctx, const char *line),
			   void *ctx);

#endif
