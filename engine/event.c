/*
 * event.c - event emission: building struct midge_event for the io
 * callback (messages, drops, session changes, acknowledgements).
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* Starts an event of type about client, stamped with the engine's time. */
void event_init(struct engine *e, struct midge_event *ev, enum midge_event_type type,
		       const struct midge_client *client)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
	ev->time_ms = e->now;
	ev->client = client;
}

void event_emit(struct engine *e, struct midge_event *ev)
{
	if (e->io.event)
		e->io.event(e->io.ctx, ev);
}

/* A message event (publish, deliver, drop, ack, will, retained): the
 * message view and its per-delivery fields; to names the receiving
 * session, if any. Nothing is built when no one listens. */
void event_message(struct engine *e, enum midge_event_type type, const struct midge_client *cl,
			 const struct emsg *m, const struct session *to, uint8_t qos, uint16_t pid,
			 bool dup, enum midge_drop_reason drop, const char *why)
{
	if (type == MIDGE_EV_DROP)
		e->st.drops_by_reason[(unsigned)drop & 15u]++;
	if (!e->io.event || !(e->event_mask & (1u << type)))
		return;
	struct midge_event ev;
	struct midge_message v;
	event_init(e, &ev, type, cl);
	emsg_view(m, &v, pid, dup);
	ev.u.message.msg = &v;
	if (to) {
		ev.u.message.to.p = to->cid;
		ev.u.message.to.len = to->cid_len;
	}
	ev.u.message.qos = qos;
	ev.u.message.packet_id = pid;
	ev.u.message.drop = drop;
	ev.u.message.why = why;
	/* The record is immutable; only its count changes, and only here. */
	e->event_msg = (struct emsg *)m;
	event_emit(e, &ev);
	e->event_msg = NULL;
}

void engine_set_event_mask(struct engine *e, uint32_t types)
{
	e->event_mask = types;
}

struct emsg *engine_event_msg(const struct engine *e)
{
	return e ? e->event_msg : NULL;
}

void engine_msg_hold(void *m)
{
	emsg_ref(m);
}

void engine_msg_release(void *m)
{
	emsg_unref(m);
}

/* Reads only what emsg_new() wrote and nothing changes later: the count
 * and the expiry, which the engine thread changes, are other fields. */
void engine_msg_view(const void *m, struct midge_message *v)
{
	emsg_view(m, v, 0, false);
}

/* A message midge did not deliver: counted, then reported about the
 * session it was for (s may be NULL: dropped before routing). */
void event_drop(struct engine *e, const struct session *s, const struct emsg *m, uint8_t qos,
		      enum midge_drop_reason drop, const char *why)
{
	struct midge_client cl;
	e->st.msgs_dropped++;
	if (!e->io.event)
		return;
	if (s)
		session_client(s, &cl);
	event_message(e, MIDGE_EV_DROP, s ? &cl : NULL, m, s, qos, 0, false, drop, why);
}

/* A session event (created, resumed, discarded, taken over, expired);
 * cl may be NULL: the session names itself. */
void event_session(struct engine *e, enum midge_event_type type, const struct session *s,
			 const struct midge_client *cl, const char *why)
{
	struct midge_event ev;
	struct midge_client tmp;
	if (!e->io.event)
		return;
	if (!cl) {
		session_client(s, &tmp);
		cl = &tmp;
	}
	event_init(e, &ev, type, cl);
	ev.u.session.expiry = s->expiry;
	ev.u.session.queued = s->queue_len + s->n_inflight;
	ev.u.session.why = why;
	event_emit(e, &ev);
}

void event_acked(struct engine *e, struct engine_conn *c, const struct slot *sl,
		       const struct emsg *m)
{
	if (m)
		event_message(e, MIDGE_EV_ACKED, &c->info, m, c->s, sl->d.qos, sl->pid, false, 0, NULL);
}
