/*
 * store.c - the store that keeps nothing (engine/store.h): the default, so
 * the engine calls its store unconditionally and a persistence layer
 * replaces the table, not the engine's code. Also the views of messages
 * and deliveries a store is given.
 *
 * The no-op store returns no session handle, so the engine never reports
 * anything about a session's traffic to it: without persistence a QoS 1
 * delivery costs no store call at all.
 */
#include "engine/internal.h"

#include "engine/store.h"

static void *none_session_saved(void *ctx, void *sess, const struct engine_store_session *s)
{
	(void)ctx;
	(void)sess;
	(void)s;
	return NULL;
}

static void none_sess(void *ctx, void *sess)
{
	(void)ctx;
	(void)sess;
}

static void none_subscription_added(void *ctx, void *sess, const struct midge_str *filter,
				    uint8_t options, uint32_t sub_id)
{
	(void)ctx;
	(void)sess;
	(void)filter;
	(void)options;
	(void)sub_id;
}

static void none_subscription_removed(void *ctx, void *sess, const struct midge_str *filter)
{
	(void)ctx;
	(void)sess;
	(void)filter;
}

static void none_message_queued(void *ctx, void *sess, const struct engine_store_msg *m,
				const struct engine_store_delivery *d)
{
	(void)ctx;
	(void)sess;
	(void)m;
	(void)d;
}

static void none_sess_id(void *ctx, void *sess, uint64_t msg_id)
{
	(void)ctx;
	(void)sess;
	(void)msg_id;
}

static void none_flight_sent(void *ctx, void *sess, uint16_t packet_id,
			     const struct engine_store_msg *m, const struct engine_store_delivery *d)
{
	(void)ctx;
	(void)sess;
	(void)packet_id;
	(void)m;
	(void)d;
}

static void none_sess_pid_id(void *ctx, void *sess, uint16_t packet_id, uint64_t msg_id)
{
	(void)ctx;
	(void)sess;
	(void)packet_id;
	(void)msg_id;
}

static void none_released(void *ctx, uint64_t msg_id)
{
	(void)ctx;
	(void)msg_id;
}

static void none_sess_pid(void *ctx, void *sess, uint16_t packet_id)
{
	(void)ctx;
	(void)sess;
	(void)packet_id;
}

static void none_will_set(void *ctx, void *sess, const struct engine_store_msg *will,
			  uint32_t delay)
{
	(void)ctx;
	(void)sess;
	(void)will;
	(void)delay;
}

static void none_retained_set(void *ctx, const struct midge_str *topic,
			      const struct engine_store_msg *m, uint64_t old_id)
{
	(void)ctx;
	(void)topic;
	(void)m;
	(void)old_id;
}

static void none_history_added(void *ctx, const struct midge_str *filter, uint64_t seq,
			       uint64_t at, const struct engine_store_msg *m)
{
	(void)ctx;
	(void)filter;
	(void)seq;
	(void)at;
	(void)m;
}

static void none_history_removed(void *ctx, const struct midge_str *filter, uint64_t seq,
				 uint64_t msg_id)
{
	(void)ctx;
	(void)filter;
	(void)seq;
	(void)msg_id;
}

static uint64_t none_ticket(void *ctx)
{
	(void)ctx;
	return 0;
}

const struct engine_store engine_store_none = {
	.ctx = NULL,
	.session_saved = none_session_saved,
	.session_removed = none_sess,
	.subscription_added = none_subscription_added,
	.subscription_removed = none_subscription_removed,
	.message_queued = none_message_queued,
	.message_unqueued = none_sess_id,
	.flight_sent = none_flight_sent,
	.flight_released = none_sess_pid_id,
	.flight_done = none_sess_pid_id,
	.message_released = none_released,
	.qos2_received = none_sess_pid,
	.qos2_released = none_sess_pid,
	.will_set = none_will_set,
	.retained_set = none_retained_set,
	.history_added = none_history_added,
	.history_removed = none_history_removed,
	.ticket = none_ticket,
};

void engine_store_attach(struct engine *e, const struct engine_store *store)
{
	e->store = store ? *store : engine_store_none;
}

/* The store's view of m: the event view, its id and its deadline (a will
 * not published yet has none: its interval is in its properties). */
void store_msg_view(const struct emsg *m, struct engine_store_msg *out)
{
	emsg_view(m, &out->v, 0, false);
	out->id = m->id;
	out->expiry_at = emsg_has_expiry(m) ? m->expiry.at : 0;
	out->source.client = m->origin != 0;
	out->source.user.p = m->origin_user;
	out->source.user.len = m->origin_user_len;
	out->source.listener = m->origin_listener;
}

void store_delivery_view(const struct delivery *d, struct engine_store_delivery *out)
{
	out->qos = d->qos;
	out->retain = d->retain;
	out->shared = d->shared;
	out->n_sub_ids = d->n_sub_ids;
	for (uint8_t i = 0; i < ENGINE_STORE_SUBIDS; i++)
		out->sub_ids[i] = i < d->n_sub_ids ? d->sub_ids[i] : 0;
}
