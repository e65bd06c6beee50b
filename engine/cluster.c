/*
 * cluster.c - the engine's side of a cluster (engine/engine.h,
 * struct engine_cluster): which filters this node's clients want (the
 * cluster subscribes in NATS to those only), the messages accepted here
 * that go to the other nodes, retained changes, and what comes back:
 * messages other nodes published (routed here only, never forwarded
 * again, so nothing echoes) and the cluster-wide retained store.
 *
 * Without engine_cluster_attach() every function here is one test of
 * has_cluster.
 */
#include "engine/internal.h"

#include <string.h>

void engine_cluster_attach(struct engine *e, const struct engine_cluster *cl)
{
	e->cluster = *cl;
	e->has_cluster = true;
}

void engine_cluster_detach(struct engine *e)
{
	e->has_cluster = false;
}

/* The filter interest is about: $share/NAME/F stands for F (the group's
 * members on this node are offered what arrives for F). */
void cluster_interest(struct engine *e, const uint8_t *filter, size_t len, bool on)
{
	if (!e->has_cluster || !e->cluster.interest)
		return;
	if (len > 7 && memcmp(filter, "$share/", 7) == 0) {
		const uint8_t *f = memchr(filter + 7, '/', len - 7);
		if (!f)
			return;
		f++;
		len -= (size_t)(f - filter);
		filter = f;
	}
	/* $SYS is each node's own: a node's statistics never cross */
	if (len >= 4 && memcmp(filter, "$SYS", 4) == 0 && (len == 4 || filter[4] == '/'))
		return;
	e->cluster.interest(e->cluster.ctx, filter, len, on);
}

/* The view of m the cluster is given. */
static void cluster_view(const struct engine *e, const struct emsg *m, struct engine_cluster_msg *v)
{
	(void)e;
	memset(v, 0, sizeof *v);
	v->topic = m->topic;
	v->topic_len = m->topic_len;
	v->payload = m->payload->data;
	v->payload_len = m->payload->len;
	v->props = m->props_len ? m->raw_props : NULL;
	v->props_len = m->props_len;
	v->origin_id = (const uint8_t *)m->origin_id;
	v->origin_len = m->origin_len;
	v->expiry_at = emsg_has_expiry(m) ? m->expiry.at : 0;
	v->qos = m->qos;
	v->retain = m->retain;
}

/* Whether m stays on this node: the broker's own $SYS statistics. */
static bool cluster_local(const struct emsg *m, const struct midge_client *from)
{
	return !from && m->topic_len >= 5 && memcmp(m->topic, "$SYS/", 5) == 0;
}

/*
 * publish.c: m was accepted here. Hands it to the cluster once (the
 * cluster encodes it once for every node) and leaves the ticket its
 * acknowledgement waits for in e->cluster_ticket. Returns whether it went.
 */
bool cluster_forward(struct engine *e, const struct emsg *m, const struct midge_client *from)
{
	e->cluster_ticket = 0;
	if (!e->has_cluster || cluster_local(m, from))
		return false;
	struct engine_cluster_msg v;
	cluster_view(e, m, &v);
	uint64_t ticket = 0;
	if (e->cluster.publish(e->cluster.ctx, &v, &ticket) < 0)
		return false;
	e->cluster_ticket = ticket;
	return true;
}

/* publish.c: the retained message of topic was set (m) or cleared (NULL)
 * by a message accepted here. */
void cluster_retained(struct engine *e, const uint8_t *topic, size_t len, const struct emsg *m)
{
	if (!e->has_cluster || !e->cluster.retained)
		return;
	if (len >= 5 && memcmp(topic, "$SYS/", 5) == 0)
		return;
	struct engine_cluster_msg v;
	if (m)
		cluster_view(e, m, &v);
	e->cluster.retained(e->cluster.ctx, topic, len, m ? &v : NULL);
}

/* Whether a QoS 1/2 PUBLISH must be refused because the cluster cannot
 * take it now (its bounded buffer is full). */
bool cluster_full(const struct engine *e)
{
	return e->has_cluster && e->cluster.room && !e->cluster.room(e->cluster.ctx);
}

/* A message from the cluster as an emsg (reference 1), or NULL when it
 * is invalid or has expired. */
static struct emsg *cluster_msg(struct engine *e, const struct engine_cluster_msg *v)
{
	if (v->topic_len == 0 || v->topic_len > UINT16_MAX || v->qos > 2 ||
	    !codec_topic_name_valid(v->topic, v->topic_len) || v->payload_len > UINT32_MAX)
		return NULL;
	if (v->expiry_at && v->expiry_at <= e->now)
		return NULL; /* [MQTT-3.3.2-5] expired on the way */
	struct emsg *m = emsg_new(e, v->topic, v->topic_len, v->payload, v->payload_len, v->props,
				  v->props_len, v->qos, v->retain, 0, v->origin_id, v->origin_len, false);
	if (!m)
		return NULL;
	/* the deadline the publishing node set, not one counted again here */
	if (emsg_has_expiry(m) && v->expiry_at)
		m->expiry.at = v->expiry_at;
	return m;
}

int engine_cluster_input(struct engine *e, const uint8_t *f, size_t flen,
			 const struct engine_cluster_msg *v, uint64_t now_ms)
{
	e->now = now_ms;
	/* NATS matched the subject; the MQTT rules decide ($ topics, escaping) */
	if (!topic_filter_matches(f, flen, v->topic, v->topic_len))
		return -1;
	struct emsg *m = cluster_msg(e, v);
	if (!m)
		return -1;
	e->st.msgs_received++;
	e->st.publish_received++;
	uint32_t n = route_message_filter(e, m, f, flen);
	emsg_unref(m);
	return (int)n;
}

int engine_cluster_retain(struct engine *e, const uint8_t *topic, size_t len,
			  const struct engine_cluster_msg *v, uint64_t now_ms)
{
	e->now = now_ms;
	if (!e->cfg.retain_available || len == 0 || len > UINT16_MAX ||
	    !codec_topic_name_valid(topic, len))
		return -1;
	int rc;
	if (!v || v->payload_len == 0) {
		rc = retained_set(e, topic, len, NULL);
	} else {
		if (v->topic_len != len || memcmp(v->topic, topic, len) != 0)
			return -1;
		struct emsg *m = cluster_msg(e, v);
		if (!m && !(v->expiry_at && v->expiry_at <= now_ms))
			return -1;
		/* an expired one clears what this node held */
		if (m)
			m->retain = true;
		/* this node's bounds hold for the cluster's messages too */
		if (m && !publish_retain_room(e, topic, len, emsg_size(m))) {
			emsg_unref(m);
			return -1;
		}
		rc = retained_set(e, topic, len, m); /* takes m's reference */
	}
	e->st.retained_count = retain_store_count(e->retained);
	return rc < 0 ? -1 : 0;
}
