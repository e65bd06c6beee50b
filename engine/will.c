/*
 * will.c - the will: building it from CONNECT, publishing it (at once or
 * after its delay), discarding it.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/* Frees a will record that is not (or no longer) scheduled. */
void will_free(struct will *w)
{
	if (!w)
		return;
	emsg_unref(w->m);
	free(w);
}

void will_clear(struct engine *e, struct session *s)
{
	struct will *w = s->will;
	if (!w)
		return;
	s->will = NULL;
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
	timer_cancel(e, &w->t);
	free(w);
	struct midge_client cl;
	session_client(s, &cl);
	/* the will's expiry counts from when it is published */
	if (m->has_expiry)
		m->expire_at = e->now + (uint64_t)m->props.message_expiry * 1000;
	event_message(e, MIDGE_EV_WILL, &cl, m, NULL, m->qos, 0, false, 0, NULL);
	publish_accept(e, m, &cl, 0, false);
	emsg_unref(m);
}
