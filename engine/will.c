/*
 * will.c - the will: building it from CONNECT, publishing it (at once or
 * after its delay), discarding it.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Step 4 of CONNECT: the will it carries, checked as a PUBLISH would be
 * (limits.c) and copied. Returns 0 with *out set (NULL when the CONNECT
 * has no will), or the CONNACK reason code with *why.
 */
uint8_t will_build(struct engine *e, struct engine_conn *c, const struct codec_connect *k,
		   const uint8_t *cid, size_t cid_len, struct will **out, const char **why)
{
	*out = NULL;
	if (!k->will)
		return 0;
	const uint8_t *topic = k->will_topic.p;
	size_t tlen = k->will_topic.len;
	if (conn_mount(e, c, &topic, &tlen) < 0) { /* the listener's mount_point in front */
		*why = "will topic too long under mount_point";
		return MQTT_RC_TOPIC_NAME_INVALID;
	}
	enum limits_verdict verdict =
		limits_check_message(e, &c->info, topic, tlen, k->will_payload.len, k->will_qos,
				     k->will_retain);
	if (verdict) {
		*why = limits_answer_will[verdict].why;
		return limits_answer_will[verdict].rc;
	}
	bool v5 = k->level == CODEC_V5;
	struct will *w = calloc(1, sizeof *w);
	if (w)
		w->m = emsg_new(e, topic, tlen, k->will_payload.p,
				k->will_payload.len, v5 ? k->will_props.raw.p : NULL,
				v5 ? k->will_props.raw.len : 0, k->will_qos, k->will_retain, 0, cid,
				cid_len, true);
	if (!w || !w->m) {
		free(w);
		*why = "out of memory";
		return MQTT_RC_SERVER_UNAVAILABLE;
	}
	w->t.kind = T_WILL;
	if (v5 && CODEC_HAS_PROP(&k->will_props, CODEC_PROP_WILL_DELAY))
		w->delay = k->will_props.will_delay;
	*out = w;
	return 0;
}

/* Frees a will record that is not (or no longer) scheduled. */
void will_free(struct will *w)
{
	if (!w)
		return;
	emsg_unref(w->m);
	free(w);
}

/* The session has no pending will any more: the store forgets it too. */
static void will_store_forget(struct engine *e, struct session *s)
{
	if (s->store)
		STORE_CALL(e, will_set, s->store, NULL, 0);
}

/* Discards the session's pending will without publishing it. */
void will_clear(struct engine *e, struct session *s)
{
	struct will *w = s->will;
	if (!w)
		return;
	s->will = NULL;
	will_store_forget(e, s);
	cluster_will(e, s);
	timer_cancel(e, &w->t);
	will_free(w);
}

/* Publishes the session's pending will now and forgets it. */
void will_publish(struct engine *e, struct session *s)
{
	struct will *w = s->will;
	if (!w)
		return;
	struct emsg *m = w->m;
	s->will = NULL;
	will_store_forget(e, s);
	cluster_will(e, s);
	timer_cancel(e, &w->t);
	free(w);
	struct midge_client cl;
	session_client(s, &cl);
	/* allowed at CONNECT; asked again as it goes out (what Mosquitto
	 * does), for a reload may have taken the topic away since */
	if (!limits_acl_allows(e, &cl, m->topic, m->topic_len, ENGINE_ACCESS_PUBLISH, m->qos,
			       m->retain)) {
		event_drop(e, s, m, m->qos, MIDGE_DROP_NOT_AUTHORIZED, "will topic no longer authorized");
		emsg_unref(m);
		return;
	}
	if (m->retain && e->cfg.check_retain_source)
		emsg_set_source(m, &cl);
	/* the will's expiry counts from when it is published (emsg_new left
	 * the deadline unset) */
	if (emsg_has_expiry(m))
		m->expiry.at = e->now + (uint64_t)m->props->message_expiry * 1000;
	event_message(e, MIDGE_EV_WILL, &cl, m, NULL, m->qos, 0, false, 0, NULL);
	publish_accept(e, m, &cl, 0, false);
	emsg_unref(m);
}
