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
	e->ck_on = cl->checkpoint != NULL;
	if (journal_attach(e) < 0)
		e->cluster.replay = NULL; /* out of memory: checkpoints only */
}

void engine_cluster_detach(struct engine *e)
{
	e->has_cluster = false;
	e->ck_on = false; /* sessions ending from now on keep their checkpoints */
}

/* Whether a topic or filter is under $SYS: each node's own, a node's
 * statistics never cross. */
static bool cluster_is_sys(const uint8_t *t, size_t len)
{
	return len >= 4 && memcmp(t, "$SYS", 4) == 0 && (len == 4 || t[4] == '/');
}

/* The F of "$share/NAME/F", or NULL when f is not a shared filter. */
static const uint8_t *cluster_share_filter(const uint8_t *f, size_t len, size_t *flen)
{
	if (len <= 7 || memcmp(f, "$share/", 7) != 0)
		return NULL;
	const uint8_t *x = memchr(f + 7, '/', len - 7);
	if (!x)
		return NULL;
	x++;
	*flen = len - (size_t)(x - f);
	return x;
}

/* The filter interest is about, whole: $share/NAME/F is its own interest
 * (a NATS queue group, so each message reaches one member in the cluster). */
void cluster_interest(struct engine *e, const uint8_t *filter, size_t len, bool on)
{
	if (!e->has_cluster || !e->cluster.interest)
		return;
	size_t flen = len;
	const uint8_t *f = cluster_share_filter(filter, len, &flen);
	if (cluster_is_sys(f ? f : filter, flen))
		return;
	e->cluster.interest(e->cluster.ctx, filter, len, on);
}

/*
 * The interest of s's subscription to filter: a shared one counts only
 * while s has a connection, so NATS's queue group offers a message only
 * to nodes where a member can take it. Counted for an offline member, a
 * node would be picked and find nobody to give it to while a member on
 * another node was connected.
 */
void cluster_sub_interest(struct engine *e, const struct session *s, const uint8_t *filter,
			  size_t len, bool on)
{
	size_t flen;
	if (!s->conn && cluster_share_filter(filter, len, &flen))
		return;
	cluster_interest(e, filter, len, on);
}

/* s got (on) or lost its connection: its shared subscriptions' interest
 * follows (cluster_sub_interest). */
void cluster_share_presence(struct engine *e, const struct session *s, bool on)
{
	if (!e->has_cluster)
		return;
	for (const struct sub *x = s->subs; x; x = x->next) {
		size_t flen;
		if (cluster_share_filter(x->filter, x->len, &flen))
			cluster_interest(e, x->filter, x->len, on);
	}
}

/* Whether a message on topic, forwarded to the cluster, reaches this
 * node's shared groups through the cluster (every group but those on
 * $SYS filters, which have no interest there). */
bool cluster_shares(const struct engine *e, const uint8_t *topic, size_t len)
{
	return e->has_cluster && e->cluster.interest && !cluster_is_sys(topic, len);
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
	if (e->jr)
		e->jr->cur_run = e->jr->cur_seq = e->jr->cur_job = 0;
	if (!e->has_cluster || cluster_local(m, from))
		return false;
	struct engine_cluster_msg v;
	cluster_view(e, m, &v);
	journal_forward(e, &v);
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

/* The pending will of s changed (set at CONNECT, or gone): the cluster
 * keeps it for the case this node dies. */
void cluster_will(struct engine *e, const struct session *s)
{
	if (!e->has_cluster || !e->cluster.will)
		return;
	if (!s->will) {
		e->cluster.will(e->cluster.ctx, (const uint8_t *)s->cid, s->cid_len, NULL, 0);
		return;
	}
	struct engine_cluster_msg v;
	cluster_view(e, s->will->m, &v);
	v.expiry_at = 0; /* a will's expiry counts from its publication */
	/* published when its delay passes or its session ends, whichever
	 * comes first (session.c does the same here) */
	uint32_t delay = s->will->delay < s->expiry ? s->will->delay : s->expiry;
	e->cluster.will(e->cluster.ctx, (const uint8_t *)s->cid, s->cid_len, &v, delay);
}

int engine_cluster_will(struct engine *e, const struct engine_cluster_msg *v, uint64_t now_ms)
{
	e->now = now_ms;
	if (v->topic_len == 0 || v->topic_len > UINT16_MAX || v->qos > 2 ||
	    !codec_topic_name_valid(v->topic, v->topic_len) || v->payload_len > UINT32_MAX ||
	    v->origin_len > UINT16_MAX)
		return -1;
	struct emsg *m = emsg_new(e, v->topic, v->topic_len, v->payload, v->payload_len, v->props,
				  v->props_len, v->qos, v->retain, 0, v->origin_id, v->origin_len, true);
	if (!m)
		return -1;
	/* as will_publish(): the expiry counts from the publication */
	if (emsg_has_expiry(m))
		m->expiry.at = e->now + (uint64_t)m->props->message_expiry * 1000;
	struct midge_client cl;
	memset(&cl, 0, sizeof cl);
	cl.client_id.p = (const char *)v->origin_id;
	cl.client_id.len = v->origin_len;
	event_message(e, MIDGE_EV_WILL, &cl, m, NULL, m->qos, 0, false, 0, NULL);
	/* the node that died allowed it at CONNECT; it goes out as the broker's */
	publish_accept(e, m, NULL, 0, false);
	emsg_unref(m);
	return 0;
}

/* Whether a QoS 1/2 PUBLISH must be refused because the cluster cannot
 * take it now (its bounded buffer is full). */
bool cluster_full(const struct engine *e)
{
	return e->has_cluster && e->cluster.room && !e->cluster.room(e->cluster.ctx);
}

struct emsg *cluster_msg(struct engine *e, const struct engine_cluster_msg *v)
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
	size_t plen = flen;
	const uint8_t *pf = cluster_share_filter(f, flen, &plen);
	/* NATS matched the subject; the MQTT rules decide ($ topics, escaping) */
	if (!topic_filter_matches(pf ? pf : f, plen, v->topic, v->topic_len))
		return -1;
	struct emsg *m = cluster_msg(e, v);
	if (!m)
		return -1;
	e->st.msgs_received++;
	e->st.publish_received++;
	journal_input(e, v, pf != NULL);
	uint32_t n = pf ? route_message_group(e, m, f, flen) : route_message_filter(e, m, f, flen, true);
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
