/*
 * publish.c - inbound PUBLISH and the acknowledgement flows
 * (PUBACK, PUBREC, PUBREL, PUBCOMP), incoming QoS 2 ids awaiting PUBREL,
 * and accepting a message (retained store, event, routing).
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Sets (m) or clears (NULL) the retained message of topic, as
 * retain_store_set() does, the store taking m's reference, and tells the
 * persistence store what changed. While the retained store holds a
 * message with an expiry, its deadline is in the heap, so it goes when it
 * expires [MQTT-3.3.2-5], not when a SUBSCRIBE next finds it: a topic
 * nobody subscribes to again does not keep its bytes forever.
 */
int retained_set(struct engine *e, const uint8_t *topic, size_t len, struct emsg *m)
{
	struct emsg *old = retain_store_get(e->retained, topic, len);
	uint64_t old_id = old ? old->id : 0;
	if (old)
		timer_cancel(e, &old->expiry); /* before the store lets old go */
	int rc = retain_store_set(e->retained, topic, len, m);
	struct emsg *held = rc < 0 ? old : m;
	/* Without memory for the heap, a SUBSCRIBE still finds it expired. */
	if (held && emsg_has_expiry(held))
		(void)timer_set(e, &held->expiry, held->expiry.at);
	if (rc >= 0 && (m || old_id)) {
		struct midge_str t = {(const char *)topic, len};
		struct engine_store_msg v;
		if (m)
			store_msg_view(m, &v);
		STORE_CALL(e, retained_set, &t, m ? &v : NULL, old_id);
	}
	return rc;
}

/* The deadline of a retained message (T_RETAINED) has come. */
void retained_expire(struct engine *e, struct emsg *m)
{
	emsg_ref(m); /* the store's reference goes in retained_set() */
	if (retained_set(e, m->topic, m->topic_len, NULL) > 0) {
		event_message(e, MIDGE_EV_RETAIN_CLEAR, NULL, m, NULL, m->qos, 0, false, 0, "expired");
	}
	e->st.retained_count = retain_store_count(e->retained);
	emsg_unref(m);
}

/*
 * Accepts m from a client or the broker: retained store, event, routing.
 * Takes no reference of its own beyond what it stores.
 */

/*
 * Whether a retained message of about size bytes for topic fits the
 * broker-wide bounds: replacing a topic's message never adds a topic, and
 * its old bytes go. Messages from the broker itself ($SYS) are not held to
 * it. A client PUBLISH past it is refused (publish_handle); a will is
 * still published, but not retained.
 */
bool publish_retain_room(struct engine *e, const uint8_t *topic, size_t len, size_t size)
{
	const struct emsg *old = retain_store_get(e->retained, topic, len);
	if (!old && e->cfg.max_retained_messages &&
	    retain_store_count(e->retained) - e->broker_retained >= e->cfg.max_retained_messages)
		return false;
	uint64_t bytes = retain_store_bytes(e->retained) - (old ? emsg_size(old) : 0);
	return !e->cfg.max_retained_bytes || bytes + size <= e->cfg.max_retained_bytes;
}

uint32_t publish_accept(struct engine *e, struct emsg *m, const struct midge_client *from,
			       uint16_t pid, bool dup)
{
	e->st.msgs_received++;
	e->st.publish_received++;
	if (from && m->qos < 3) {
		e->st.publish_received_qos[m->qos]++;
		e->st.publish_bytes_received_qos[m->qos] += m->payload->len;
	}
	if (e->io.sample && !--e->sample_left) {
		uint32_t gap = e->io.sample(e->io.ctx, m->topic, m->topic_len);
		e->sample_left = gap ? gap : 1;
	}
	int set;
	if (m->retain && e->cfg.retain_available) {
		if (m->payload->len == 0) {
			/* [MQTT-3.3.1-6] [MQTT-3.3.1-7] */
			cluster_retained(e, m->topic, m->topic_len, NULL);
			if (retained_set(e, m->topic, m->topic_len, NULL) > 0) {
				if (!from && e->broker_retained)
					e->broker_retained--;
				event_message(e, MIDGE_EV_RETAIN_CLEAR, from, m, NULL, m->qos, pid, dup, 0,
					      NULL);
			}
		} else if (from && !publish_retain_room(e, m->topic, m->topic_len, emsg_size(m))) {
			event_message(e, MIDGE_EV_DROP, from, m, NULL, m->qos, pid, dup,
				      MIDGE_DROP_RETAINED_FULL,
				      "retained store full: published, not retained");
		} else if ((set = retained_set(e, m->topic, m->topic_len, emsg_ref(m))) >= 0) {
			cluster_retained(e, m->topic, m->topic_len, m);
			if (!from && set == 0)
				e->broker_retained++;
			/* [MQTT-3.3.1-5] ownership: the store holds the new reference */
			event_message(e, MIDGE_EV_RETAIN_SET, from, m, NULL, m->qos, pid, dup, 0, NULL);
		} else {
			emsg_unref(m);
		}
		e->st.retained_count = retain_store_count(e->retained);
	}
	event_message(e, MIDGE_EV_PUBLISH, from, m, NULL, m->qos, pid, dup, 0, NULL);
	/* other nodes may have subscribers: nobody can say "none". What went
	 * to the cluster reaches this node's shared groups through it (a NATS
	 * queue group: once in the whole cluster); the ticket is kept across
	 * the routing, which may publish again. */
	bool forwarded = cluster_forward(e, m, from);
	uint64_t ticket = e->cluster_ticket;
	uint32_t n = route_message(e, m, forwarded && cluster_shares(e, m->topic, m->topic_len));
	e->cluster_ticket = ticket;
	if (forwarded)
		n++;
	if (!n && e->io.event)
		event_message(e, MIDGE_EV_DROP, from, m, NULL, m->qos, pid, dup,
			     MIDGE_DROP_NO_SUBSCRIBERS, "no matching subscribers");
	return n;
}

/* Records an incoming QoS 2 id until its PUBREL. Returns 0 or -1 (OOM,
 * or 65535 ids already). */
static int rel_add(struct engine *e, struct session *s, uint16_t pid)
{
	if (rel_insert(s, pid) < 0)
		return -1;
	if (s->store)
		STORE_CALL(e, qos2_received, s->store, pid);
	return 0;
}

/* The topic of an inbound PUBLISH: its own, or the one its alias stands
 * for. Returns 0, or a reason code for DISCONNECT with *why set. */
static uint8_t publish_topic(struct engine_conn *c, const struct codec_publish *pub,
			     const uint8_t **topic, size_t *len, const char **why)
{
	*topic = pub->topic.p;
	*len = pub->topic.len;
	if (c->version == CODEC_V5 && CODEC_HAS_PROP(&pub->props, CODEC_PROP_TOPIC_ALIAS))
		return alias_resolve(c, pub->props.topic_alias, topic, len, why);
	if (*len == 0) {
		*why = "PUBLISH without topic";
		return MQTT_RC_PROTOCOL_ERROR;
	}
	return 0;
}

/*
 * The v5 properties a client's PUBLISH (or an administrator's,
 * engine_admin_publish) may not carry, or whose promise the payload
 * breaks. Returns 0; a reason code for DISCONNECT with *fatal set;
 * or a reason code for the acknowledgement (the message is not forwarded).
 */
uint8_t publish_props_check(const struct engine *e, const struct codec_props *props,
			    const void *payload, size_t len, bool *fatal, const char **why)
{
	*fatal = false;
	if (CODEC_HAS_PROP(props, CODEC_PROP_SUBSCRIPTION_ID)) {
		*fatal = true; /* [MQTT-3.3.4-6] */
		*why = "PUBLISH from a client with a subscription identifier";
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (e->cfg.check_payload_format && CODEC_HAS_PROP(props, CODEC_PROP_PAYLOAD_FORMAT) &&
	    props->payload_format == 1 && !codec_utf8_valid(payload, len)) {
		*why = "payload format indicator 1 but the payload is not UTF-8"; /* 3.3.2.3.2 */
		return MQTT_RC_PAYLOAD_FORMAT_INVALID;
	}
	return 0;
}

/*
 * PUBACK or PUBREC for an inbound QoS 1/2 PUBLISH, held until what its
 * handling reported to the store (since `before`) is durable. Returns 0
 * or -1.
 */
static int publish_acknowledge(struct engine *e, struct engine_conn *c,
			       const struct codec_publish *pub, uint8_t rc, const char *why,
			       uint64_t before, uint64_t cticket)
{
	if (pub->qos == 1) {
		hold_ack_cluster(e, c, hold_ticket(e, before, false), cticket, CODEC_PUBACK,
				 pub->packet_id, rc, why);
	} else if (pub->qos == 2) {
		/* [MQTT-4.3.3-8]: remember the id until PUBREL; a refusal ends the exchange */
		if (rc < 0x80 && rel_add(e, c->s, pub->packet_id) < 0)
			return client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
		hold_ack_cluster(e, c, hold_ticket(e, before, false), cticket, CODEC_PUBREC,
				 pub->packet_id, rc, why);
	}
	return 0;
}

/*
 * The store cannot write: a QoS 1/2 PUBLISH is not accepted, since its
 * acknowledgement would promise what the store cannot keep. v5: the
 * acknowledgement says 0x97 and the message is not forwarded; 3.x has no
 * way to refuse, so the connection is closed without one (the client
 * sends it again later). Returns 0 (answered in v5) or -1.
 */
static int publish_refuse_unstorable(struct engine *e, struct engine_conn *c,
				     const struct codec_publish *pub, const uint8_t *topic,
				     size_t tlen, uint64_t before)
{
	const char *why = e->store_failing ? e->store_failing
					   : "the cluster's buffer is full (NATS unreachable)";
	struct emsg *m = emsg_new(e, topic, tlen, pub->payload.p, pub->payload.len, NULL, 0,
				  pub->qos, pub->retain, c->s->serial, (const uint8_t *)c->s->cid,
				  c->s->cid_len, false);
	if (m) {
		event_drop(e, NULL, m, pub->qos, MIDGE_DROP_STORE_FAILING, why);
		emsg_unref(m);
	}
	if (c->version != CODEC_V5) {
		client_request_close(e, c, MQTT_RC_QUOTA_EXCEEDED, false, why);
		return -1;
	}
	return publish_acknowledge(e, c, pub, MQTT_RC_QUOTA_EXCEEDED, why, before, 0);
}

/*
 * An inbound PUBLISH: topic (alias), a resent QoS 2 id, the shared message
 * check (limits.c), the receive maximum, then accepted or dropped, then
 * acknowledged. Returns 0, -1 once the connection is closing, or
 * ENGINE_CONN_REPLAY when the ACL's answer is pending (nothing done).
 */
int publish_handle(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct codec_publish *pub = &p->u.publish;
	struct session *s = c->s;
	const uint8_t *topic;
	size_t tlen;
	const char *why = NULL;
	bool v5 = c->version == CODEC_V5;
	uint64_t before = e->store_changes;

	uint8_t rc = publish_topic(c, pub, &topic, &tlen, &why);
	if (rc)
		return client_fail(e, c, rc, why);
	if (conn_mount(e, c, &topic, &tlen) < 0) /* the listener's mount_point in front */
		return client_fail(e, c, MQTT_RC_TOPIC_NAME_INVALID, "topic too long under mount_point");
	if (pub->qos == 2 && rel_has(s, pub->packet_id)) {
		/* a resent QoS 2 PUBLISH is acknowledged, not delivered again
		 * [MQTT-4.3.3-9]; the id it names may not be durable yet */
		hold_ack(e, c, hold_ticket(e, before, true), CODEC_PUBREC, pub->packet_id, 0, NULL);
		return 0;
	}
	/* an auth worker's answer may be pending: the packet then waits,
	 * unhandled (nothing above changed what a replay would see: an
	 * alias set again is set to the same topic) */
	e->acl_may_hold = e->acl_ask;
	e->acl_held = false;
	enum limits_verdict verdict = limits_check_message(e, &c->info, topic, tlen, pub->payload.len,
							   pub->qos, pub->retain);
	e->acl_may_hold = false;
	if (verdict == LIMITS_HELD)
		return ENGINE_CONN_REPLAY;
	const struct limits_answer *refusal = verdict ? &limits_answer_publish[verdict] : NULL;
	if (refusal && refusal->fatal)
		return client_fail(e, c, refusal->rc, refusal->why);
	/* [MQTT-3.3.4-9]: acknowledgements held for the store still count */
	if (v5 && pub->qos > 0 && s->n_rel + hold_count(c) >= c->receive_max)
		return client_fail(e, c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
	if (pub->qos > 0 && (e->store_failing || cluster_full(e)) && !refusal)
		return publish_refuse_unstorable(e, c, pub, topic, tlen, before);
	enum midge_drop_reason drop = verdict == LIMITS_SIZE     ? MIDGE_DROP_TOO_LARGE
				      : verdict == LIMITS_MEMORY ? MIDGE_DROP_MEMORY_LIMIT
								 : MIDGE_DROP_NOT_AUTHORIZED;
	static const struct limits_answer retained_full = {
		MQTT_RC_QUOTA_EXCEEDED, false,
		"retained store full (midge_max_retained_messages / midge_max_retained_bytes)"};

	struct limits_answer payload_refusal;
	if (v5 && pub->props.raw.len && !refusal) {
		payload_refusal.rc = publish_props_check(e, &pub->props, pub->payload.p,
							 pub->payload.len, &payload_refusal.fatal,
							 &payload_refusal.why);
		if (payload_refusal.rc && payload_refusal.fatal)
			return client_fail(e, c, payload_refusal.rc, payload_refusal.why);
		if (payload_refusal.rc) {
			refusal = &payload_refusal;
			drop = MIDGE_DROP_PAYLOAD_FORMAT;
		}
	}

	struct emsg *m = emsg_new(e, topic, tlen, pub->payload.p, pub->payload.len,
				  v5 ? pub->props.raw.p : NULL, v5 ? pub->props.raw.len : 0, pub->qos,
				  pub->retain, s->serial, (const uint8_t *)s->cid, s->cid_len, false);
	if (!m)
		return client_fail(e, c, MQTT_RC_IMPLEMENTATION_SPECIFIC, "out of memory");
	if (pub->retain && e->cfg.check_retain_source)
		emsg_set_source(m, &c->info);
	if (!refusal && pub->retain && pub->payload.len && e->cfg.retain_available &&
	    !publish_retain_room(e, m->topic, m->topic_len, emsg_size(m))) {
		refusal = &retained_full;
		drop = MIDGE_DROP_RETAINED_FULL;
	}
	if (refusal) {
		/* not forwarded, but the QoS flow completes */
		rc = refusal->rc;
		why = refusal->why;
		event_drop(e, NULL, m, pub->qos, drop, why);
	} else if (!publish_accept(e, m, &c->info, pub->packet_id, pub->dup) && pub->qos > 0) {
		rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
	}
	uint64_t cticket = refusal ? 0 : e->cluster_ticket;
	e->cluster_ticket = 0;
	emsg_unref(m);
	if (c->state != CONN_UP)
		return -1;
	return publish_acknowledge(e, c, pub, rc, why, before, cticket);
}

/*
 * PUBACK, PUBREC, PUBREL, PUBCOMP from the client: moves the matching
 * in-flight slot on (or answers "packet id not found" as the flow
 * requires), then lets queued messages into the freed window.
 */
int publish_handle_ack(struct engine *e, struct engine_conn *c, struct codec_packet *p)
{
	struct session *s = c->s;
	uint16_t pid = p->u.ack.packet_id;
	uint64_t before = e->store_changes;
	struct slot *sl = flight_find(s, pid);
	if (sl && sl->unsent)
		sl = NULL; /* not sent on this connection: the client cannot know it */
	switch (p->type) {
	case CODEC_PUBACK:
		if (sl && sl->state == SLOT_PUBACK) {
			event_acked(e, c, sl, sl->d.m);
			flight_remove(e, s, sl);
		}
		break;
	case CODEC_PUBREC: {
		if (!sl || sl->state == SLOT_PUBACK) {
			hold_ack(e, c, 0, CODEC_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND,
				 "packet id not found");
			return 0;
		}
		if (p->u.ack.rc >= 0x80) { /* the receiver refused: the exchange ends */
			flight_remove(e, s, sl);
			break;
		}
		bool again = sl->state == SLOT_PUBCOMP; /* a repeated PUBREC */
		if (sl->state == SLOT_PUBREC) {
			event_acked(e, c, sl, sl->d.m);
			move_touch(e, s);
			if (s->store)
				STORE_CALL(e, flight_released, s->store, pid, sl->d.m->id);
			flight_release_message(s, sl);
			sl->state = SLOT_PUBCOMP;
		}
		/* [MQTT-4.3.3-4]; once sent, the message cannot be sent again, so
		 * the PUBREL waits until its state is durable */
		hold_ack(e, c, hold_ticket(e, before, again), CODEC_PUBREL, pid, 0, NULL);
		return 0;
	}
	case CODEC_PUBCOMP:
		if (sl && sl->state == SLOT_PUBCOMP)
			flight_remove(e, s, sl);
		break;
	case CODEC_PUBREL: {
		bool found = rel_delete(s, pid);
		if (found && s->store)
			STORE_CALL(e, qos2_released, s->store, pid);
		/* [MQTT-4.3.3-11]; the PUBCOMP waits until the id is gone from
		 * the store, or a crash would bring it back and swallow the next
		 * message that uses it. "Not found" may answer a release not
		 * durable yet: it waits for everything reported. */
		hold_ack(e, c, hold_ticket(e, before, !found), CODEC_PUBCOMP, pid,
			 found ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND, found ? NULL : "packet id not found");
		return 0;
	}
	}
	session_drain(e, s);
	return 0;
}
