/*
 * recover.c - the database back into the engine at start-up, table by
 * table in the order engine_restore_*() wants: sessions, messages,
 * subscriptions, windows (in send order), queues (in order), incoming
 * QoS 2 ids, wills, retained messages, replay logs. Every column is
 * checked for its type and range before the engine sees it, and the
 * engine checks each record as it would a packet: a damaged database
 * stops here with the table and the reason, never later.
 *
 * The front learns what it needs to go on: a session record per stored
 * session (its queue's sequence numbers), the references to every message
 * body. What no longer fits (a queue bound lowered, a log no longer
 * configured, a body nothing refers to) is deleted in the first batch.
 */
#include "store/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A stored session while recovering: by sid, in sid order. */
struct rsess {
	int64_t sid;
	struct sess *h;
	struct midge_str cid; /* malloc'd */
	struct midge_str user; /* malloc'd; p NULL: anonymous */
	uint16_t listener;
	uint64_t disconnected_at;
	uint32_t expiry;
	uint8_t protocol;
	bool dropped_tail; /* its queue overflowed the bounds: later rows go too */
	bool queue_seen;
	uint64_t next_seq; /* the queue row expected next: seqs have no holes */
};

struct recover {
	struct store *st;
	struct front_ref *refs; /* every stored message, ascending by id */
	size_t n_refs, cap_refs, ref_cursor;
	sqlite3 *h;
	uint64_t now;
	struct rsess *ss;
	size_t n, cap;
	char *err;
	size_t errlen;
	const char *table;
	bool not_damage; /* failed for want of memory: the file may be fine */
};

static int rfail(struct recover *r, const char *why)
{
	if (strcmp(why, "out of memory") == 0)
		r->not_damage = true;
	snprintf(r->err, r->errlen, "table %s: %s", r->table, why);
	return -1;
}

/* An integer column within [min, max]. */
static int col_int(struct recover *r, sqlite3_stmt *s, int i, int64_t min, int64_t max,
		   int64_t *out)
{
	if (sqlite3_column_type(s, i) != SQLITE_INTEGER)
		return rfail(r, "a column that must be an integer is not");
	*out = sqlite3_column_int64(s, i);
	if (*out < min || *out > max)
		return rfail(r, "an integer column is out of range");
	return 0;
}

/* A blob column (text is read as its bytes; NULL is not accepted). */
static int col_blob(struct recover *r, sqlite3_stmt *s, int i, const uint8_t **p, size_t *len)
{
	int t = sqlite3_column_type(s, i);
	if (t != SQLITE_BLOB && t != SQLITE_TEXT)
		return rfail(r, "a column that must be bytes is not");
	*p = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);
	*len = n > 0 ? (size_t)n : 0;
	if (!*p)
		*p = (const uint8_t *)"";
	return 0;
}

/* A blob column that may be NULL (*p NULL then). */
static int col_blob_or_null(struct recover *r, sqlite3_stmt *s, int i, const uint8_t **p,
			    size_t *len)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		*p = NULL;
		*len = 0;
		return 0;
	}
	return col_blob(r, s, i, p, len);
}

/* Steps a query; rc SQLITE_ROW or SQLITE_DONE, anything else is reported. */
static int rstep(struct recover *r, sqlite3_stmt *s, bool *row)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*row = true;
		return 0;
	}
	*row = false;
	if (rc == SQLITE_DONE)
		return 0;
	/* a disk that fails to read, or no memory, is not a damaged file */
	int code = rc & 0xff;
	if (code == SQLITE_IOERR || code == SQLITE_NOMEM || code == SQLITE_BUSY || code == SQLITE_FULL)
		r->not_damage = true;
	snprintf(r->err, r->errlen, "table %s: cannot read it: %s", r->table,
		 sqlite3_errmsg(r->h));
	return -1;
}

static int rprepare(struct recover *r, const char *table, const char *sql, sqlite3_stmt **s)
{
	r->table = table;
	if (sqlite3_prepare_v2(r->h, sql, -1, s, NULL) == SQLITE_OK)
		return 0;
	snprintf(r->err, r->errlen, "table %s: cannot read it: %s", table, sqlite3_errmsg(r->h));
	return -1;
}

static struct rsess *rsess_find(struct recover *r, int64_t sid)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->ss[mid].sid < sid)
			lo = mid + 1;
		else if (r->ss[mid].sid > sid)
			hi = mid;
		else
			return &r->ss[mid];
	}
	return NULL;
}

/* The stored session sid, or an error. */
static struct rsess *rsess_get(struct recover *r, sqlite3_stmt *s, int col)
{
	int64_t sid;
	if (col_int(r, s, col, 1, INT64_MAX, &sid) < 0)
		return NULL;
	struct rsess *x = rsess_find(r, sid);
	if (!x)
		rfail(r, "a row names a session that is not stored");
	return x;
}

/* One more row refers to message id (known to exist: the engine found
 * it). Rows mostly come in id order: the next cell is tried first. */
static void rref(struct recover *r, uint64_t id)
{
	size_t k = r->ref_cursor;
	if (!(k < r->n_refs && r->refs[k].id == id) && !(++k < r->n_refs && r->refs[k].id == id)) {
		size_t lo = 0, hi = r->n_refs;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (r->refs[mid].id < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		k = lo;
	}
	if (k < r->n_refs && r->refs[k].id == id) {
		r->refs[k].refs++;
		r->ref_cursor = k;
	}
}

static int rengine(struct recover *r, int rc, const char *why)
{
	if (rc < 0)
		return rfail(r, why ? why : "invalid record");
	return rc;
}

static int recover_sessions(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "sessions",
			  "SELECT sid, client_id, expiry, protocol, disconnected_at, user_name, listener "
			  "FROM sessions ORDER BY sid", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		int64_t sid, expiry, protocol, at, listener;
		const uint8_t *cid, *user;
		size_t len, ulen;
		const char *why = NULL;
		if (col_int(r, s, 0, 1, INT64_MAX, &sid) < 0 || col_blob(r, s, 1, &cid, &len) < 0 ||
		    col_int(r, s, 2, 1, UINT32_MAX, &expiry) < 0 || col_int(r, s, 3, 3, 5, &protocol) < 0 ||
		    col_int(r, s, 4, 0, INT64_MAX, &at) < 0 ||
		    col_blob_or_null(r, s, 5, &user, &ulen) < 0 ||
		    col_int(r, s, 6, 0, UINT16_MAX, &listener) < 0) {
			rc = -1;
			break;
		}
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 64;
			struct rsess *v = realloc(r->ss, cap * sizeof *v);
			if (!v) {
				rc = rfail(r, "out of memory");
				break;
			}
			r->ss = v;
			r->cap = cap;
		}
		struct rsess *x = &r->ss[r->n];
		memset(x, 0, sizeof *x);
		char *copy = malloc(len + 1);
		char *ucopy = user ? malloc(ulen + 1) : NULL;
		x->h = copy && (ucopy || !user) ? front_sess_new(r->st, sid) : NULL;
		if (!x->h) {
			free(copy);
			free(ucopy);
			rc = rfail(r, "out of memory");
			break;
		}
		memcpy(copy, cid, len);
		if (ucopy)
			memcpy(ucopy, user, ulen);
		x->sid = sid;
		x->cid.p = copy;
		x->cid.len = len;
		x->user.p = ucopy;
		x->user.len = ulen;
		x->listener = (uint16_t)listener;
		x->disconnected_at = (uint64_t)at;
		x->expiry = (uint32_t)expiry;
		x->protocol = (uint8_t)protocol;
		r->n++;
		struct engine_store_session rec = {x->cid, (uint32_t)expiry, (uint8_t)protocol,
						   (uint64_t)at, x->user, x->listener};
		int e_rc = engine_restore_session(r->st->e, &rec, x->h, &why);
		rc = rengine(r, e_rc, why);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The columns topic, payload, props, [origin, origin_user,
 * origin_listener,] qos, retain from col on. */
static int rmessage(struct recover *r, sqlite3_stmt *s, int col, bool origin,
		    struct engine_restore_msg *m)
{
	int64_t qos, retain, listener;
	const uint8_t *p;
	size_t n;
	int c = col;
	if (col_blob(r, s, c++, &m->topic, &m->topic_len) < 0 ||
	    col_blob(r, s, c++, &m->payload, &m->payload_len) < 0 ||
	    col_blob(r, s, c++, &m->props, &m->props_len) < 0)
		return -1;
	if (origin) {
		if (col_blob(r, s, c++, &p, &n) < 0)
			return -1;
		m->origin = p;
		m->origin_len = n;
		if (col_blob_or_null(r, s, c++, &p, &n) < 0 ||
		    col_int(r, s, c++, -1, UINT16_MAX, &listener) < 0)
			return -1;
		/* listener -1: the broker published it (no user name then) */
		if (listener < 0 && p)
			return rfail(r, "a message from the broker has a publisher's user name");
		m->source.client = listener >= 0;
		m->source.user.p = (const char *)p;
		m->source.user.len = n;
		m->source.listener = listener >= 0 ? (uint16_t)listener : 0;
	}
	if (col_int(r, s, c++, 0, 2, &qos) < 0 || col_int(r, s, c++, 0, 1, &retain) < 0)
		return -1;
	m->qos = (uint8_t)qos;
	m->retain = retain != 0;
	return 0;
}

static int recover_messages(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "messages",
			  "SELECT id, topic, payload, props, origin, origin_user, origin_listener, qos, "
			  "retain, expiry_at FROM messages ORDER BY id", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct engine_restore_msg m = {0};
		int64_t id, at;
		const char *why = NULL;
		if (col_int(r, s, 0, 1, INT64_MAX, &id) < 0 || rmessage(r, s, 1, true, &m) < 0 ||
		    col_int(r, s, 9, 0, INT64_MAX, &at) < 0) {
			rc = -1;
			break;
		}
		m.id = (uint64_t)id;
		m.expiry_at = (uint64_t)at;
		int e_rc = engine_restore_message(r->st->e, &m, &why);
		rc = rengine(r, e_rc, why);
		if (rc == 0 && r->n_refs == r->cap_refs) {
			size_t cap = r->cap_refs ? r->cap_refs * 2 : 1024;
			struct front_ref *v = realloc(r->refs, cap * sizeof *v);
			if (!v) {
				rc = rfail(r, "out of memory");
				break;
			}
			r->refs = v;
			r->cap_refs = cap;
		}
		if (rc == 0) {
			r->refs[r->n_refs].id = m.id;
			r->refs[r->n_refs].refs = 0;
			r->n_refs++;
		}
		r->st->stats.recovered_messages++;
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_subscriptions(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "subscriptions",
			  "SELECT sid, filter, options, sub_id FROM subscriptions ORDER BY sid", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct rsess *x = rsess_get(r, s, 0);
		struct midge_str f;
		const uint8_t *fp;
		int64_t options, sub_id;
		const char *why = NULL;
		if (!x || col_blob(r, s, 1, &fp, &f.len) < 0 || col_int(r, s, 2, 0, 255, &options) < 0 ||
		    col_int(r, s, 3, 0, UINT32_MAX, &sub_id) < 0) {
			rc = -1;
			break;
		}
		f.p = (const char *)fp;
		int e_rc = engine_restore_subscription(r->st->e, &x->cid, &f, (uint8_t)options,
						       (uint32_t)sub_id, &why);
		rc = rengine(r, e_rc, why);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The delivery columns qos, flags, sub_ids from col on. */
static int rdelivery(struct recover *r, sqlite3_stmt *s, int col, struct engine_store_delivery *d)
{
	int64_t qos, flags;
	const uint8_t *ids;
	size_t n;
	if (col_int(r, s, col, 1, 2, &qos) < 0 || col_int(r, s, col + 1, 0, 3, &flags) < 0 ||
	    col_blob(r, s, col + 2, &ids, &n) < 0)
		return -1;
	if (n % 4 || n / 4 > ENGINE_STORE_SUBIDS)
		return rfail(r, "a delivery's subscription ids are malformed");
	memset(d, 0, sizeof *d);
	d->qos = (uint8_t)qos;
	d->retain = (flags & OP_RETAIN) != 0;
	d->shared = (flags & OP_SHARED) != 0;
	d->n_sub_ids = (uint8_t)(n / 4);
	for (size_t i = 0; i < n / 4; i++)
		d->sub_ids[i] = (uint32_t)ids[4 * i] << 24 | (uint32_t)ids[4 * i + 1] << 16 |
				(uint32_t)ids[4 * i + 2] << 8 | ids[4 * i + 3];
	return 0;
}

static int recover_inflight(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "inflight",
			  "SELECT sid, pid, seq, state, msg, qos, flags, sub_ids FROM inflight ORDER BY "
			  "sid, seq", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct rsess *x = rsess_get(r, s, 0);
		int64_t pid, seq, state, msg;
		struct engine_store_delivery d;
		const char *why = NULL;
		if (!x || col_int(r, s, 1, 1, 65535, &pid) < 0 ||
		    col_int(r, s, 2, 0, INT64_MAX, &seq) < 0 || col_int(r, s, 3, 1, 3, &state) < 0 ||
		    col_int(r, s, 4, 0, INT64_MAX, &msg) < 0 || rdelivery(r, s, 5, &d) < 0) {
			rc = -1;
			break;
		}
		if ((uint64_t)seq > r->st->flight_seq)
			r->st->flight_seq = (uint64_t)seq;
		int e_rc = engine_restore_flight(r->st->e, &x->cid, (uint16_t)pid,
						 (enum engine_store_flight)state, (uint64_t)msg, &d, &why);
		rc = rengine(r, e_rc, why);
		if (rc == 0 && msg)
			rref(r, (uint64_t)msg);
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_queue(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "queue",
			  "SELECT sid, seq, msg, qos, flags, sub_ids FROM queue ORDER BY sid, seq", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct rsess *x = rsess_get(r, s, 0);
		int64_t seq, msg;
		struct engine_store_delivery d;
		const char *why = NULL;
		if (!x || col_int(r, s, 1, 0, INT64_MAX - 1, &seq) < 0 ||
		    col_int(r, s, 2, 1, INT64_MAX, &msg) < 0 || rdelivery(r, s, 3, &d) < 0) {
			rc = -1;
			break;
		}
		if (!x->queue_seen) {
			x->queue_seen = true;
			x->h->qhead = x->h->qtail = x->next_seq = (uint64_t)seq;
		}
		if ((uint64_t)seq != x->next_seq) {
			rc = rfail(r, "a session's queue has a hole");
			break;
		}
		x->next_seq = (uint64_t)seq + 1;
		int got = x->dropped_tail ? 1
					  : engine_restore_queued(r->st->e, &x->cid, (uint64_t)msg, &d,
								  &why);
		if ((rc = rengine(r, got, why)) < 0)
			break;
		if (got == 0) {
			x->h->qtail = (uint64_t)seq + 1;
			rref(r, (uint64_t)msg);
		} else { /* past the queue's bounds now: the row goes */
			x->dropped_tail = true;
			struct op *op = front_op(r->st, OP_Q_DEL);
			if (!op) {
				rc = rfail(r, "out of memory");
				break;
			}
			op->sid = x->sid;
			op->b = (uint64_t)seq;
			rc = 0;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_incoming(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "incoming_qos2", "SELECT sid, pid FROM incoming_qos2 ORDER BY sid", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct rsess *x = rsess_get(r, s, 0);
		int64_t pid;
		const char *why = NULL;
		if (!x || col_int(r, s, 1, 1, 65535, &pid) < 0) {
			rc = -1;
			break;
		}
		int e_rc = engine_restore_qos2(r->st->e, &x->cid, (uint16_t)pid, &why);
		rc = rengine(r, e_rc, why);
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_wills(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "wills",
			  "SELECT sid, topic, payload, props, qos, retain, delay FROM wills", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct rsess *x = rsess_get(r, s, 0);
		struct engine_restore_msg m = {0};
		int64_t delay;
		const char *why = NULL;
		if (!x || rmessage(r, s, 1, false, &m) < 0 ||
		    col_int(r, s, 6, 0, UINT32_MAX, &delay) < 0) {
			rc = -1;
			break;
		}
		m.origin = (const uint8_t *)x->cid.p;
		m.origin_len = x->cid.len;
		int e_rc = engine_restore_will(r->st->e, &x->cid, &m, (uint32_t)delay, &why);
		rc = rengine(r, e_rc, why);
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_retained(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "retained", "SELECT topic, msg FROM retained", &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct midge_str t;
		const uint8_t *tp;
		int64_t msg;
		const char *why = NULL;
		if (col_blob(r, s, 0, &tp, &t.len) < 0 || col_int(r, s, 1, 1, INT64_MAX, &msg) < 0) {
			rc = -1;
			break;
		}
		t.p = (const char *)tp;
		int e_rc = engine_restore_retained(r->st->e, &t, (uint64_t)msg, &why);
		rc = rengine(r, e_rc, why);
		if (rc == 0)
			rref(r, (uint64_t)msg);
	}
	sqlite3_finalize(s);
	return rc;
}

static int recover_history(struct recover *r)
{
	sqlite3_stmt *s;
	bool row;
	int rc = rprepare(r, "history", "SELECT filter, seq, at, msg FROM history ORDER BY filter, seq",
			  &s);
	while (rc == 0 && (rc = rstep(r, s, &row)) == 0 && row) {
		struct midge_str f;
		const uint8_t *fp;
		int64_t seq, at, msg;
		const char *why = NULL;
		if (col_blob(r, s, 0, &fp, &f.len) < 0 || col_int(r, s, 1, 1, INT64_MAX, &seq) < 0 ||
		    col_int(r, s, 2, 0, INT64_MAX, &at) < 0 || col_int(r, s, 3, 1, INT64_MAX, &msg) < 0) {
			rc = -1;
			break;
		}
		f.p = (const char *)fp;
		int got = engine_restore_history(r->st->e, &f, (uint64_t)seq, (uint64_t)at,
						 (uint64_t)msg, &why);
		if ((rc = rengine(r, got, why)) < 0)
			break;
		if (got == 0) {
			rref(r, (uint64_t)msg);
		} else { /* a log no longer configured */
			struct op *op = front_op(r->st, OP_HIST_DEL);
			if (!op || batch_bytes(r->st->open, op, f.p, f.len) < 0) {
				rc = rfail(r, "out of memory");
				break;
			}
			op->b = (uint64_t)seq;
			rc = 0;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

/* Sessions that were connected when the broker stopped: their connection
 * ends now, and the store learns it (their deadlines count from now). */
static int recover_connected(struct recover *r)
{
	r->table = "sessions";
	for (size_t i = 0; i < r->n; i++) {
		struct rsess *x = &r->ss[i];
		if (x->disconnected_at)
			continue;
		struct op *op = front_op(r->st, OP_SESS_PUT);
		if (!op || batch_bytes2(r->st->open, op, x->cid.p, x->cid.len, x->user.p,
					x->user.len) < 0)
			return rfail(r, "out of memory");
		op->sid = x->sid;
		op->a = x->cid.len;
		op->flags = x->user.p ? OP_USER : 0;
		op->pid = x->listener;
		op->c = x->expiry;
		op->qos = x->protocol;
		op->b = r->now;
	}
	return 0;
}

int recover_run(struct store *st, sqlite3 *h, uint64_t now_ms, char *err, size_t errlen)
{
	struct recover r = {0};
	r.st = st;
	r.h = h;
	r.now = now_ms;
	r.err = err;
	r.errlen = errlen;
	int rc = engine_restore_begin(st->e, now_ms);
	if (rc < 0) {
		snprintf(err, errlen, "the broker holds messages or sessions already: the store is "
			 "opened before any (publish with midge_publish once midge_run runs)");
		r.not_damage = true;
	}
	if (rc == 0)
		rc = recover_sessions(&r);
	if (rc == 0)
		rc = recover_messages(&r);
	if (rc == 0)
		rc = recover_subscriptions(&r);
	if (rc == 0)
		rc = recover_inflight(&r);
	if (rc == 0)
		rc = recover_queue(&r);
	if (rc == 0)
		rc = recover_incoming(&r);
	if (rc == 0)
		rc = recover_wills(&r);
	if (rc == 0)
		rc = recover_retained(&r);
	if (rc == 0)
		rc = recover_history(&r);
	if (rc == 0)
		rc = recover_connected(&r);
	if (rc == 0 && front_refs_load(st, r.refs, r.n_refs) < 0)
		rc = rfail(&r, "out of memory");
	free(r.refs);
	st->stats.recovered_sessions = r.n;
	for (size_t i = 0; i < r.n; i++) {
		free((char *)r.ss[i].cid.p);
		free((char *)r.ss[i].user.p);
	}
	free(r.ss);
	if (rc < 0)
		engine_restore_abort(st->e);
	return rc < 0 ? (r.not_damage ? -2 : -1) : 0;
}
