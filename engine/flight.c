/*
 * flight.c - the packet ids a session has in flight, both ways, with
 * constant work per message however wide the window:
 *
 *   outgoing: QoS 1/2 deliveries awaiting PUBACK / PUBREC / PUBCOMP, a ring
 *   in send order. midge numbers them itself, consecutively, so the ring
 *   position of a packet id is its distance from the oldest one: finding
 *   the slot an acknowledgement names is one subtraction. A slot that ends
 *   out of order (a QoS 2 exchange overtaken by QoS 1 ones, a resend that
 *   no longer fits) leaves a hole that the oldest position skips when it
 *   moves on.
 *
 *   incoming: QoS 2 ids awaiting PUBREL, a set (open addressing, linear
 *   probing). Clients number these, so every QoS 2 PUBLISH looks its id up
 *   (a resend must not be routed twice) and most look-ups miss: a set
 *   answers a miss in one probe where a list would scan it all.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* Packet ids run 1..65535 and wrap past 0 [MQTT-2.2.1-3]. */
static uint16_t pid_add(uint16_t pid, uint32_t k)
{
	return (uint16_t)((pid - 1u + k) % 65535u + 1u);
}

static uint32_t flight_cap(const struct session *s)
{
	return s->flight ? 1u << s->flight_cap_log2 : 0;
}

/* The slot at position k from the oldest (a hole has state 0). */
struct slot *flight_at(struct session *s, uint32_t k)
{
	return &s->flight[(s->flight_head + k) & (flight_cap(s) - 1)];
}

/* The live slot of outgoing packet id pid, or NULL. */
struct slot *flight_find(struct session *s, uint16_t pid)
{
	if (!pid || !s->flight_span)
		return NULL;
	uint32_t k = pid >= s->flight_pid ? (uint32_t)(pid - s->flight_pid)
					   : 65535u - s->flight_pid + pid;
	if (k >= s->flight_span)
		return NULL;
	struct slot *sl = flight_at(s, k);
	return sl->state ? sl : NULL;
}

/*
 * Whether a new delivery of size bytes may go out under window w. Live
 * slots count against w; holes count against twice w, so a client that
 * leaves its oldest id unanswered while acknowledging later ones cannot
 * make the ring grow past that. Bytes count against max_inflight_bytes,
 * but an empty window takes any one message, or a message larger than
 * the bound could never go.
 */
/* Room left under 2^32 for one message of the largest packet size. */
#define FLIGHT_BYTES_MAX ((uint64_t)UINT32_MAX - (256u << 20))
bool flight_room(const struct engine *e, const struct session *s, uint32_t w, size_t size)
{
	uint32_t span_max = w >= 32768 ? 65535 : (w < 8 ? 16 : 2 * w);
	if (s->n_inflight >= w || s->flight_span >= span_max)
		return false;
	/* The counter is 32 bits (an idle session is 8 bytes smaller): with
	 * no byte bound, or a larger one, a window still stops at
	 * FLIGHT_BYTES_MAX. */
	uint64_t max = e->cfg.max_inflight_bytes;
	if (!max || max > FLIGHT_BYTES_MAX)
		max = FLIGHT_BYTES_MAX;
	return !s->flight_bytes || s->flight_bytes + (uint64_t)size <= max;
}

/* Doubles the ring (from 8), keeping positions in order. Returns 0 or -1. */
static int flight_grow(struct session *s)
{
	uint32_t cap = flight_cap(s);
	uint32_t ncap = cap ? cap * 2 : 8;
	if (ncap > 65536)
		return -1;
	struct slot *v = malloc(ncap * sizeof *v);
	if (!v)
		return -1;
	for (uint32_t k = 0; k < s->flight_span; k++)
		v[k] = *flight_at(s, k);
	free(s->flight);
	s->flight = v;
	s->flight_head = 0;
	s->flight_cap_log2 = (uint8_t)__builtin_ctz(ncap);
	return 0;
}

/*
 * The slot the next delivery will use, its packet id set and its state 0:
 * nothing is in flight until flight_commit(), so a delivery that turns out
 * not to be sendable leaves no trace and its id is used by the next one.
 * Returns NULL on OOM.
 */
struct slot *flight_reserve(struct session *s)
{
	if (s->flight_span == flight_cap(s) && flight_grow(s) < 0)
		return NULL;
	if (!s->flight_pid) /* a new session: ids start at 1 */
		s->flight_pid = 1;
	struct slot *sl = flight_at(s, s->flight_span);
	sl->state = 0;
	sl->unsent = false;
	sl->pid = pid_add(s->flight_pid, s->flight_span);
	return sl;
}

/*
 * Restoring a window (restore.c): the slot of outgoing packet id pid,
 * placed after every position already in the ring; the positions between
 * become holes. Ids come in send order, so pid must lie beyond the newest
 * one. Returns NULL when it does not (a damaged store) or on OOM; else the
 * slot, zeroed but for its id, for the caller to fill and flight_commit().
 */
struct slot *flight_place(struct session *s, uint16_t pid)
{
	uint32_t k = 0;
	if (!pid)
		return NULL;
	if (!s->flight_span)
		s->flight_pid = pid;
	else
		k = pid >= s->flight_pid ? (uint32_t)(pid - s->flight_pid)
					 : 65535u - s->flight_pid + pid;
	if ((s->flight_span && k < s->flight_span) || k >= 65535)
		return NULL;
	while (k >= flight_cap(s))
		if (flight_grow(s) < 0)
			return NULL;
	for (uint32_t j = s->flight_span; j <= k; j++) {
		struct slot *h = flight_at(s, j);
		memset(h, 0, sizeof *h);
		h->pid = pid_add(s->flight_pid, j);
	}
	s->flight_span = (uint16_t)k;
	return flight_at(s, k);
}

/* Puts the reserved slot (now filled in) in flight. */
void flight_commit(struct engine *e, struct session *s)
{
	const struct slot *sl = flight_at(s, s->flight_span);
	if (sl->d.m) /* a restored PUBREL-sent slot has none */
		s->flight_bytes += emsg_size(sl->d.m);
	s->flight_span++;
	s->n_inflight++;
	e->st.inflight_count++;
}

/* Drops slot sl's message (PUBREC received, or the exchange ended): its
 * bytes no longer count against the window. */
void flight_release_message(struct session *s, struct slot *sl)
{
	if (!sl->d.m)
		return;
	s->flight_bytes -= emsg_size(sl->d.m);
	emsg_unref(sl->d.m);
	sl->d.m = NULL;
}

/*
 * Ends the in-flight exchange in slot sl: drops its message reference and
 * leaves a hole; the oldest position moves past holes, so the window stays
 * in send order.
 */
void flight_remove(struct engine *e, struct session *s, struct slot *sl)
{
	uint16_t pid = sl->pid;
	uint64_t id = sl->d.m ? sl->d.m->id : 0;
	flight_release_message(s, sl);
	sl->state = 0;
	s->n_inflight--;
	e->st.inflight_count--;
	if (sl->unsent) {
		sl->unsent = false;
		s->n_unsent--;
	}
	while (s->flight_span && !flight_at(s, 0)->state) {
		s->flight_head = (uint16_t)((s->flight_head + 1u) & (flight_cap(s) - 1));
		s->flight_pid = pid_add(s->flight_pid, 1);
		s->flight_span--;
		if (s->unsent_at)
			s->unsent_at--;
	}
	move_touch(e, s);
	if (s->store)
		STORE_CALL(e, flight_done, s->store, pid, id);
}

/* Ends every outgoing exchange and frees the ring. */
void flight_free(struct engine *e, struct session *s)
{
	while (s->n_inflight) /* the oldest position is never a hole */
		flight_remove(e, s, flight_at(s, 0));
	free(s->flight);
	s->flight = NULL;
	s->flight_span = 0;
	s->unsent_at = 0;
}

/* The set of incoming QoS 2 ids: 0 marks a free cell (0 is never an id). */
static uint32_t rel_cap(const struct session *s)
{
	return s->rel ? 1u << s->rel_cap_log2 : 0;
}

static uint32_t rel_home(const struct session *s, uint16_t pid)
{
	/* Fibonacci hashing: consecutive ids land far apart */
	return (uint32_t)(pid * 2654435769u) >> (32 - s->rel_cap_log2);
}

bool rel_has(const struct session *s, uint16_t pid)
{
	if (!s->n_rel || !pid)
		return false;
	uint32_t mask = rel_cap(s) - 1;
	for (uint32_t i = rel_home(s, pid);; i = (i + 1) & mask) {
		if (s->rel[i] == pid)
			return true;
		if (!s->rel[i])
			return false;
	}
}

static void rel_put(struct session *s, uint16_t pid)
{
	uint32_t mask = rel_cap(s) - 1;
	uint32_t i = rel_home(s, pid);
	while (s->rel[i])
		i = (i + 1) & mask;
	s->rel[i] = pid;
}

/* Rehashes into twice the cells (from 8); the set stays at most half full. */
static int rel_grow(struct session *s)
{
	uint32_t cap = rel_cap(s);
	uint32_t ncap = cap ? cap * 2 : 8;
	uint16_t *old = s->rel;
	uint16_t *v = calloc(ncap, sizeof *v);
	if (!v)
		return -1;
	s->rel = v;
	s->rel_cap_log2 = (uint8_t)__builtin_ctz(ncap);
	for (uint32_t i = 0; i < cap; i++)
		if (old[i])
			rel_put(s, old[i]);
	free(old);
	return 0;
}

/* Adds pid (not in the set). Returns 0, or -1 on OOM or at 65535 ids. */
int rel_insert(struct session *s, uint16_t pid)
{
	if (s->n_rel == UINT16_MAX)
		return -1;
	if (2u * (s->n_rel + 1u) > rel_cap(s) && rel_grow(s) < 0)
		return -1;
	rel_put(s, pid);
	s->n_rel++;
	return 0;
}

/*
 * Removes pid. Returns whether it was there. The cells after it in its
 * probe run move back into the gap (backward-shift deletion), so a later
 * look-up never stops early at a false empty cell and no tombstones pile up.
 */
bool rel_delete(struct session *s, uint16_t pid)
{
	if (!s->n_rel || !pid)
		return false;
	uint32_t mask = rel_cap(s) - 1;
	uint32_t i = rel_home(s, pid);
	while (s->rel[i] != pid) {
		if (!s->rel[i])
			return false;
		i = (i + 1) & mask;
	}
	for (uint32_t j = (i + 1) & mask; s->rel[j]; j = (j + 1) & mask) {
		uint32_t h = rel_home(s, s->rel[j]);
		/* s->rel[j] may fill the gap at i unless its home lies in (i, j] */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			s->rel[i] = s->rel[j];
			i = j;
		}
	}
	s->rel[i] = 0;
	s->n_rel--;
	return true;
}
