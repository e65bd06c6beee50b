/*
 * queue.h - the bounded queue of event records between the engine thread
 * (the only producer) and the hooks thread (the only consumer). Internal
 * to hooks/; the unit tests use it directly.
 *
 * One byte ring of variable-size records and three positions that only
 * grow:
 *
 *    reclaim          tail                     head
 *       |  consumed,    |  written, not yet      |  free
 *       |  still held   |  consumed              |
 *
 * The engine thread writes records at head (and publishes head); the hooks
 * thread reads them at tail (and publishes tail); the engine thread walks
 * from reclaim to tail to give back what the consumed records held (a
 * reference to a message, released on the thread that owns its count) and
 * to reuse the bytes. So the consumer never writes a record, and message
 * counts are only ever touched on the engine thread.
 *
 * A record copies what the event's views point to and may not outlive the
 * call (client id, user name, peer address, reasons, filter, receiver), so
 * nothing is malloc'd per event. The message of a message event is not
 * copied when a holder is given: the record keeps a reference and the
 * views into the message's immutable bytes.
 */
#ifndef MIDGE_HOOKS_QUEUE_H
#define MIDGE_HOOKS_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"
#include "midge.h"

/* Cache line: the producer's and the consumer's fields live apart. */
#define HOOKS_LINE 64

struct hooks_queue {
	uint8_t *buf;
	size_t size; /* a power of two */
	size_t max_held; /* bound on the bytes of held messages */
	struct hooks_holder holder;

	/* Engine thread only. */
	_Alignas(HOOKS_LINE) uint64_t wpos;   /* head as written, published below */
	uint64_t reclaim;
	uint64_t held;            /* bytes of messages the unreclaimed records hold */
	unsigned full_skip;       /* refusals left before the tail is read again */
	uint64_t drops_pending[HOOKS_MAX_ENDPOINTS]; /* not yet told to the consumer */
	bool has_drops_pending;

	/* Hooks thread only. */
	_Alignas(HOOKS_LINE) uint64_t rpos; /* tail as read, published below */
	uint64_t head_seen;

	_Alignas(HOOKS_LINE) _Atomic uint64_t head;
	_Alignas(HOOKS_LINE) _Atomic uint64_t tail;
	/* The consumer is about to sleep (or sleeps): a producer that made
	 * records since its last look must wake it. */
	_Alignas(HOOKS_LINE) atomic_bool sleeping;
};

/* What a record is. */
enum {
	HOOKS_REC_EVENT = 1,
	HOOKS_REC_WRAP = 2,  /* padding up to the end of the ring */
	HOOKS_REC_DROPS = 3, /* events dropped per socket since the last record */
};

/* An event as the consumer gets it back: the views point into the record
 * (or into the held message) and are valid until hooks_queue_pop(). The
 * lengths of views are those of the event, and pointers NULL where the
 * event's were. */
struct hooks_rec_view {
	int kind;
	uint64_t seq;
	struct midge_event ev;
	struct midge_client client;
	struct midge_message msg;
	const uint64_t *drops; /* HOOKS_REC_DROPS: one count per socket */
};

/* Allocates a ring of at least bytes (rounded up to a power of two, at
 * least 64 KiB). Returns 0 or -1 (out of memory). */
int hooks_queue_init(struct hooks_queue *q, size_t bytes, const struct hooks_holder *holder);
/* Gives back everything still held (engine thread, consumer stopped). */
void hooks_queue_free(struct hooks_queue *q);

/*
 * Engine thread. Writes a record for ev with sequence number seq; msg (may
 * be NULL) is the message of a message event, held through the holder
 * while the record lives, else its bytes are copied. Returns 0, or -1 when
 * the record does not fit (the ring or the bound on held bytes is full):
 * the caller counts the drop.
 */
int hooks_queue_put(struct hooks_queue *q, const struct midge_event *ev, void *msg,
		    uint64_t seq);
/* Engine thread: an event the sockets in the bit mask wanted did not fit;
 * the next record tells the consumer (their `dropped` counts). */
void hooks_queue_drop(struct hooks_queue *q, uint32_t sockets);
/* Engine thread: gives back what the consumed records hold. */
void hooks_queue_reclaim(struct hooks_queue *q);
/* Engine thread: records written and not yet consumed? */
bool hooks_queue_busy(struct hooks_queue *q);

/* Hooks thread: the next record, or false when the ring is empty. */
bool hooks_queue_peek(struct hooks_queue *q, struct hooks_rec_view *out);
/* Hooks thread: done with the record peek returned. Publishes the new tail
 * when publish is true (do it at least at the end of each batch). */
void hooks_queue_pop(struct hooks_queue *q, bool publish);
/* Hooks thread: publishes the tail (what has been read so far). */
void hooks_queue_publish(struct hooks_queue *q);
/* Hooks thread: is there a record to read (fresh look at head)? */
bool hooks_queue_ready(struct hooks_queue *q);
/* The same, as a sequentially consistent load (the sleep handshake). */
bool hooks_queue_ready_sc(struct hooks_queue *q);

#endif
