/*
 * limits.c - configured bounds and access decisions: the one check a
 * PUBLISH and a will both pass (QoS, retain, size, topic depth, ACL),
 * the framer's per-connection packet limit.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * The broker's own `$` topics, whatever the auth module says (Mosquitto's
 * acl__check_dollar): no client publishes on a topic starting with `$SYS`
 * except `$SYS/broker/connection/+/state` (a bridge reports its state
 * there), nor on one starting with `$share` (a filter prefix, never a
 * topic). Byte prefixes, as Mosquitto compares them.
 */
static bool limits_dollar_may_publish(const uint8_t *t, size_t n)
{
	static const char conn[] = "$SYS/broker/connection/";
	if (n >= 6 && memcmp(t, "$share", 6) == 0)
		return false;
	if (n < 4 || memcmp(t, "$SYS", 4) != 0)
		return true;
	size_t cl = sizeof conn - 1;
	if (n <= cl || memcmp(t, conn, cl) != 0)
		return false;
	const uint8_t *slash = memchr(t + cl, '/', n - cl); /* after the one `+` level */
	return slash && (size_t)(t + n - slash) == 6 && memcmp(slash, "/state", 6) == 0;
}

/*
 * Every access decision of the engine: the `$` rule for publishes, then
 * the auth module's acl callback. A refusal is counted ($SYS) and
 * reported as an acl.denied event about cl. topic is a topic name, or
 * the filter of a SUBSCRIBE. An answer still pending (ENGINE_AUTH_PENDING)
 * refuses (fail closed), except while a client's packet may wait for it
 * (e->acl_may_hold): then e->acl_held is set, nothing is counted, and
 * the caller holds the packet.
 */
bool limits_acl_allows(struct engine *e, const struct midge_client *cl, const uint8_t *topic,
		       size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	const char *why = NULL;
	int rc;
	if (access == ENGINE_ACCESS_PUBLISH && !limits_dollar_may_publish(topic, len))
		why = "clients may not publish on $SYS or $share topics";
	else if (e->acl_on && (rc = e->auth.acl(e->auth.ctx, cl, topic, len, access, qos, retain)) != 0) {
		if (rc == ENGINE_AUTH_PENDING && e->acl_may_hold) {
			e->acl_held = true;
			return false;
		}
		why = rc == ENGINE_AUTH_PENDING            ? "access decision not available"
		      : access == ENGINE_ACCESS_PUBLISH     ? "publish not authorized"
		      : access == ENGINE_ACCESS_SUBSCRIBE ? "no topic of the filter is readable"
							  : "receive not authorized";
	}
	if (!why)
		return true;
	e->st.acl_denied++;
	if (e->io.event) {
		struct midge_event ev;
		event_init(e, &ev, MIDGE_EV_ACL_DENIED, cl);
		ev.u.acl.topic.p = (const char *)topic;
		ev.u.acl.topic.len = len;
		ev.u.acl.access = (enum midge_acl_access)access;
		ev.u.acl.why = why;
		ev.u.acl.qos = qos;
		ev.u.acl.retain = retain;
		event_emit(e, &ev);
	}
	return false;
}

/*
 * May the session s receive m? The one question the engine asks before
 * it hands a message to a receiver (live, queued, retained), so every
 * path asks it the same way. qos is the subscription's (the delivery's
 * is the lower of it and the message's), retain the flag the receiver
 * gets. A refusal is also a message.dropped (not_authorized) event for s.
 *
 * With engine_set_acl_ask, the answer may be pending (an auth worker
 * asked about this receiver): RECV_HELD, nothing counted. The caller
 * queues the delivery and the drain asks again, so a slow worker delays
 * this receiver only, never the publisher's fan-out to the others.
 */
enum recv_verdict limits_receive(struct engine *e, struct session *s, const struct emsg *m,
				 uint8_t qos, bool retain)
{
	if (!e->acl_on)
		return RECV_OK;
	/* the connection's own record when there is one: a module that
	 * asks needs engine_conn_of() of it */
	struct midge_client off;
	const struct midge_client *cl = &off;
	if (s->conn)
		cl = &s->conn->info;
	else
		session_client(s, &off);
	uint8_t dq = qos < m->qos ? qos : m->qos;
	/* a delivery nested in a client's PUBLISH: that packet's own hold
	 * state is put back after */
	bool may_hold = e->acl_may_hold, held = e->acl_held, offline = e->acl_offline;
	e->acl_may_hold = e->acl_ask;
	e->acl_held = false;
	e->acl_offline = !client_is_up(s->conn);
	bool ok = limits_acl_allows(e, cl, m->topic, m->topic_len, ENGINE_ACCESS_RECEIVE, dq, retain);
	enum recv_verdict v = ok ? RECV_OK : e->acl_held ? RECV_HELD : RECV_DENIED;
	e->acl_may_hold = may_hold;
	e->acl_held = held;
	e->acl_offline = offline;
	if (v == RECV_DENIED)
		event_drop(e, s, m, qos, MIDGE_DROP_NOT_AUTHORIZED, "receive denied by ACL");
	return v;
}

/*
 * check_retain_source (Mosquitto's): a retained message from a client is
 * sent to a new subscriber only while its publisher (client id, user
 * name, listener, as they were) may still publish on its topic, so a
 * reload that takes write access away also takes back what was retained
 * with it. Messages from the broker, or kept without their source, pass.
 */
bool limits_retain_source_ok(struct engine *e, const struct emsg *m)
{
	if (!e->cfg.check_retain_source || !e->acl_on || !m->origin)
		return true;
	struct midge_client src;
	memset(&src, 0, sizeof src);
	src.client_id.p = m->origin_id;
	src.client_id.len = m->origin_len;
	src.username.p = m->origin_user;
	src.username.len = m->origin_user_len;
	src.listener = m->origin_listener;
	/* asked as its publisher was: this QoS, retained */
	return e->auth.acl(e->auth.ctx, &src, m->topic, m->topic_len, ENGINE_ACCESS_PUBLISH, m->qos,
			   true) == 0;
}

static uint32_t topic_levels(const uint8_t *p, size_t n)
{
	uint32_t levels = 1;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '/')
			levels++;
	return levels;
}

bool limits_topic_too_deep(const struct engine *e, const uint8_t *p, size_t n)
{
	return e->cfg.max_topic_levels && topic_levels(p, n) > e->cfg.max_topic_levels;
}

/*
 * The one check a message passes before midge accepts it, a PUBLISH and a
 * will alike: QoS within max_qos [MQTT-3.2.2-11] [MQTT-3.2.2-12], retain
 * only where available [MQTT-3.2.2-13] [MQTT-3.2.2-14], payload within
 * message_size_limit, topic depth within max_topic_levels, the publish
 * ACL, and memory_limit. Returns the first bound broken, in that order, or LIMITS_OK; the
 * caller answers as its packet requires (limits_verdict_* below).
 */
enum limits_verdict limits_check_message(struct engine *e, const struct midge_client *from,
					 const uint8_t *topic, size_t len, size_t payload_len,
					 uint8_t qos, bool retain)
{
	const struct engine_config *cfg = &e->cfg;
	if (qos > cfg->max_qos)
		return LIMITS_QOS;
	if (retain && !cfg->retain_available)
		return LIMITS_RETAIN;
	if (cfg->message_size_limit && payload_len > cfg->message_size_limit)
		return LIMITS_SIZE;
	if (limits_topic_too_deep(e, topic, len))
		return LIMITS_DEPTH;
	if (!limits_acl_allows(e, from, topic, len, ENGINE_ACCESS_PUBLISH, qos, retain))
		return e->acl_held ? LIMITS_HELD : LIMITS_ACL;
	if (e->memory_full)
		return LIMITS_MEMORY;
	return LIMITS_OK;
}

/*
 * How a broken bound is answered, per packet: a PUBLISH's QoS and retain
 * refusals close the connection (fatal); its other refusals are the
 * acknowledgement's reason code. Mosquitto answers an oversized payload
 * 0x95, which PUBACK/PUBREC may not carry: 0x97 is the code for an
 * administrative limit. A will's refusal is the CONNACK's code (0x95 as
 * Mosquitto's, mapped for 3.1.1 by connack_v3_map).
 */
const struct limits_answer limits_answer_publish[LIMITS__COUNT] = {
	[LIMITS_QOS] = {MQTT_RC_QOS_NOT_SUPPORTED, true, "QoS not supported"},
	[LIMITS_RETAIN] = {MQTT_RC_RETAIN_NOT_SUPPORTED, true, "retain not supported"},
	[LIMITS_SIZE] = {MQTT_RC_QUOTA_EXCEEDED, false, "payload over message_size_limit"},
	[LIMITS_DEPTH] = {MQTT_RC_TOPIC_NAME_INVALID, false, "topic has too many levels"},
	[LIMITS_ACL] = {MQTT_RC_NOT_AUTHORIZED, false, "publish not authorized"},
	[LIMITS_MEMORY] = {MQTT_RC_QUOTA_EXCEEDED, false, "memory_limit reached"},
	[LIMITS_HELD] = {MQTT_RC_NOT_AUTHORIZED, false, "publish not authorized"}, /* not used */
};

const struct limits_answer limits_answer_will[LIMITS__COUNT] = {
	[LIMITS_QOS] = {MQTT_RC_QOS_NOT_SUPPORTED, true, "will QoS not supported"},
	[LIMITS_RETAIN] = {MQTT_RC_RETAIN_NOT_SUPPORTED, true, "retained will not supported"},
	[LIMITS_SIZE] = {MQTT_RC_PACKET_TOO_LARGE, true, "will payload over message_size_limit"},
	[LIMITS_DEPTH] = {MQTT_RC_TOPIC_NAME_INVALID, true, "will topic has too many levels"},
	[LIMITS_ACL] = {MQTT_RC_NOT_AUTHORIZED, true, "will topic not authorized"},
	[LIMITS_MEMORY] = {MQTT_RC_QUOTA_EXCEEDED, true, "memory_limit reached"},
	[LIMITS_HELD] = {MQTT_RC_NOT_AUTHORIZED, true, "will topic not authorized"}, /* never held */
};

/*
 * The framer's limit for the next packet. Before CONNECT it is the
 * smaller of the two bounds: the pre-CONNECT limit exists to make an
 * unauthenticated peer cheaper, never to let it past max_packet_size.
 * A CONNECT waiting for its authentication counts as before.
 */
uint32_t engine_conn_max_packet(const struct engine_conn *c)
{
	const struct engine_config *cfg = &c->e->cfg;
	uint32_t max = cfg->max_packet_size;
	if (c->state < CONN_UP && cfg->max_packet_before_connect &&
	    (!max || cfg->max_packet_before_connect < max))
		max = cfg->max_packet_before_connect;
	return max;
}
