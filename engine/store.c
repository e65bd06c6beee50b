/*
 * store.c - the store that keeps nothing (engine/store.h): the default, so
 * the engine calls its store unconditionally and a persistence layer
 * replaces the table, not the engine's code.
 */
#include "engine/internal.h"

#include "engine/store.h"

static void none_session_saved(void *ctx, const struct engine_store_session *s)
{
	(void)ctx;
	(void)s;
}

static void none_client(void *ctx, const struct midge_str *client_id)
{
	(void)ctx;
	(void)client_id;
}

static void none_subscription_added(void *ctx, const struct midge_str *client_id,
				    const struct midge_str *filter, uint8_t options, uint32_t sub_id)
{
	(void)ctx;
	(void)client_id;
	(void)filter;
	(void)options;
	(void)sub_id;
}

static void none_subscription_removed(void *ctx, const struct midge_str *client_id,
				      const struct midge_str *filter)
{
	(void)ctx;
	(void)client_id;
	(void)filter;
}

static void none_message_queued(void *ctx, const struct midge_str *client_id,
				const struct midge_message *msg)
{
	(void)ctx;
	(void)client_id;
	(void)msg;
}

static void none_flight_set(void *ctx, const struct midge_str *client_id, uint16_t packet_id,
			    enum engine_store_flight state, const struct midge_message *msg)
{
	(void)ctx;
	(void)client_id;
	(void)packet_id;
	(void)state;
	(void)msg;
}

static void none_packet_id(void *ctx, const struct midge_str *client_id, uint16_t packet_id)
{
	(void)ctx;
	(void)client_id;
	(void)packet_id;
}

static void none_will_set(void *ctx, const struct midge_str *client_id,
			  const struct midge_message *will, uint32_t delay)
{
	(void)ctx;
	(void)client_id;
	(void)will;
	(void)delay;
}

static void none_retained_set(void *ctx, const struct midge_str *topic,
			      const struct midge_message *msg)
{
	(void)ctx;
	(void)topic;
	(void)msg;
}

const struct engine_store engine_store_none = {
	.ctx = NULL,
	.session_saved = none_session_saved,
	.session_removed = none_client,
	.subscription_added = none_subscription_added,
	.subscription_removed = none_subscription_removed,
	.message_queued = none_message_queued,
	.message_unqueued = none_client,
	.flight_set = none_flight_set,
	.flight_done = none_packet_id,
	.qos2_received = none_packet_id,
	.qos2_released = none_packet_id,
	.will_set = none_will_set,
	.retained_set = none_retained_set,
};

void engine_store_attach(struct engine *e, const struct engine_store *store)
{
	e->store = store ? *store : engine_store_none;
}
