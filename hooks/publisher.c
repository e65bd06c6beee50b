/*
 * publisher.c - the ZeroMQ publisher, the engine thread's side (see
 * publisher.h and pub.h): emit puts records into the queue the hooks
 * thread drains, flush and a periodic check wake it when it sleeps; the
 * counters, the endpoints and the notes the hooks thread left are read
 * from here.
 */
#include "hooks/pub.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Records the engine thread puts before it checks whether the hooks thread
 * sleeps (besides once per loop pass). */
#define PUB_WAKE_EVERY 256

void hooks_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void hooks_pub_note(struct hooks_publisher *p, const char *fmt, ...)
{
	uv_mutex_lock(&p->notes_mu);
	if (p->n_notes < PUB_NOTES) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->notes[p->n_notes++], PUB_NOTE_LEN, fmt, ap);
		va_end(ap);
	} else {
		p->notes_lost++;
	}
	uv_mutex_unlock(&p->notes_mu);
}

/* Wakes the hooks thread if it sleeps (see pub_round()). */
static void pub_wake(struct hooks_publisher *p)
{
	p->since_wake = 0;
	/* A sequentially consistent read-modify-write of head against the
	 * sleeper's store of `sleeping` and load of head (pub_round): one of
	 * us sees the other. (No fence: ThreadSanitizer does not model them.) */
	atomic_fetch_add_explicit(&p->q.head, 0, memory_order_seq_cst);
	if (atomic_load_explicit(&p->q.sleeping, memory_order_seq_cst))
		uv_async_send(&p->wake);
}

/*
 * The engine thread's part of an event: every event gets a sequence
 * number (the `seq` a socket's consumers see grows by one per event,
 * sent or not); one that no socket may want is counted and costs nothing
 * more. A record that does not fit is a drop for every socket that wanted
 * the event, told to the consumer with the next record.
 */
void hooks_publisher_emit(struct hooks_publisher *p, const struct midge_event *ev, void *msg)
{
	uint64_t seq = ++p->seq;
	uint64_t bit = (uint64_t)1 << ev->type;
	uint64_t want = atomic_load_explicit(&p->want, memory_order_relaxed);
	if (!(want & (bit | bit << 32))) {
		p->e_skipped++;
		return;
	}
	if (hooks_queue_put(&p->q, ev, msg, seq) < 0) {
		uint32_t socks = 0;
		for (int i = 0; i < p->n; i++)
			if (atomic_load_explicit(&p->want_sock[i], memory_order_relaxed) & (uint32_t)bit)
				socks |= 1u << i;
		hooks_queue_drop(&p->q, socks);
		p->e_dropped++;
		/* The thread is behind, not asleep (or the periodic wake-up
		 * below and the loop pass's will reach it). */
		if (++p->since_wake >= PUB_WAKE_EVERY)
			pub_wake(p);
		return;
	}
	p->e_queued++;
	if (++p->since_wake >= PUB_WAKE_EVERY)
		pub_wake(p);
}

void hooks_publisher_flush(struct hooks_publisher *p)
{
	hooks_queue_reclaim(&p->q);
	if (p->since_wake)
		pub_wake(p);
}

void hooks_publisher_quiet(struct hooks_publisher *p)
{
	uv_mutex_lock(&p->notes_mu);
	p->want_changed = NULL;
	uv_mutex_unlock(&p->notes_mu);
}

uint32_t hooks_publisher_types(const struct hooks_publisher *p)
{
	uint64_t w = atomic_load_explicit(&((struct hooks_publisher *)p)->want, memory_order_relaxed);
	return (uint32_t)(w | w >> 32);
}

void hooks_publisher_counts(const struct hooks_publisher *p, struct hooks_counts *c)
{
	c->sent = atomic_load_explicit(&p->a_sent, memory_order_relaxed);
	c->rendered = atomic_load_explicit(&p->a_rendered, memory_order_relaxed);
	c->skipped = p->e_skipped + atomic_load_explicit(&p->a_skipped, memory_order_relaxed);
	c->dropped = p->e_dropped + atomic_load_explicit(&p->a_dropped, memory_order_relaxed);
	c->ignored = atomic_load_explicit(&p->a_ignored, memory_order_relaxed);
	c->queued = p->e_queued;
}

int hooks_publisher_count(const struct hooks_publisher *p)
{
	return p ? p->n : 0;
}

const char *hooks_publisher_endpoint(const struct hooks_publisher *p, int i)
{
	return p && i >= 0 && i < p->n ? p->s[i].endpoint : NULL;
}

size_t hooks_publisher_prefixes(const struct hooks_publisher *p, int i)
{
	if (!p || i < 0 || i >= p->n)
		return 0;
	return atomic_load_explicit(&p->a_prefixes[i], memory_order_acquire);
}

bool hooks_publisher_idle(struct hooks_publisher *p, int timeout_ms)
{
	for (int waited = 0;; waited++) {
		hooks_publisher_flush(p);
		if (!hooks_queue_busy(&p->q)) {
			hooks_queue_reclaim(&p->q);
			return true;
		}
		if (waited >= timeout_ms)
			return false;
		uv_sleep(1);
	}
}

void hooks_publisher_notes(struct hooks_publisher *p, void (*cb)(void *ctx, const char *line),
			   void *ctx)
{
	char lines[PUB_NOTES][PUB_NOTE_LEN];
	uv_mutex_lock(&p->notes_mu);
	int n = p->n_notes;
	uint64_t lost = p->notes_lost;
	memcpy(lines, p->notes, sizeof lines);
	p->n_notes = 0;
	p->notes_lost = 0;
	uv_mutex_unlock(&p->notes_mu);
	for (int i = 0; i < n; i++)
		cb(ctx, lines[i]);
	if (lost) {
		char more[96];
		snprintf(more, sizeof more, "event publisher: %llu more such lines not logged",
			 (unsigned long long)lost);
		cb(ctx, more);
	}
}
