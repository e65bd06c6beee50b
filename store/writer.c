/*
 * writer.c - a batch in one transaction: BEGIN, each live operation
 * through its prepared statement, COMMIT (one fsync of the WAL in ack
 * mode). Runs on the writer thread, which only ever reads the batch it was
 * handed and the database: no engine state.
 */
#include "store/internal.h"

#include <stdio.h>
#include <string.h>

/* Binds the delivery's subscription ids as a blob of 4-byte big-endian ids. */
static void bind_sub_ids(sqlite3_stmt *s, int col, const struct op *op, uint8_t *buf)
{
	for (uint8_t i = 0; i < op->n_sub_ids && i < ENGINE_STORE_SUBIDS; i++) {
		buf[4 * i] = (uint8_t)(op->sub_ids[i] >> 24);
		buf[4 * i + 1] = (uint8_t)(op->sub_ids[i] >> 16);
		buf[4 * i + 2] = (uint8_t)(op->sub_ids[i] >> 8);
		buf[4 * i + 3] = (uint8_t)op->sub_ids[i];
	}
	sqlite3_bind_blob(s, col, buf, 4 * op->n_sub_ids, SQLITE_TRANSIENT);
}

/* Runs a statement that returns no row, and resets it (every use binds
 * all its parameters again: no need to clear them). */
static int step(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int apply_msg(struct db *d, const struct batch *b, const struct op *op, bool will)
{
	struct op_msg_head h;
	const uint8_t *topic, *payload, *props, *origin, *user;
	batch_message_view(b, op, &h, &topic, &payload, &props, &origin, &user);
	sqlite3_stmt *s = d->st[will ? ST_WILL_PUT : ST_MSG_PUT];
	if (will) {
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_blob(s, 2, topic, (int)h.topic_len, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, payload, (int)h.payload_len, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, props, (int)h.props_len, SQLITE_STATIC);
		sqlite3_bind_int(s, 5, op->qos);
		sqlite3_bind_int(s, 6, (op->flags & OP_RETAIN) != 0);
		sqlite3_bind_int64(s, 7, op->c);
	} else {
		sqlite3_bind_int64(s, 1, (int64_t)op->a);
		sqlite3_bind_blob(s, 2, topic, (int)h.topic_len, SQLITE_STATIC);
		sqlite3_bind_blob(s, 3, payload, (int)h.payload_len, SQLITE_STATIC);
		sqlite3_bind_blob(s, 4, props, (int)h.props_len, SQLITE_STATIC);
		sqlite3_bind_blob(s, 5, origin, (int)h.origin_len, SQLITE_STATIC);
		/* the publisher: NULL user = anonymous; listener -1 = the broker */
		if (op->flags & OP_USER)
			sqlite3_bind_blob(s, 6, user, (int)h.user_len, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 6);
		sqlite3_bind_int(s, 7, (op->flags & OP_CLIENT) ? op->pid : -1);
		sqlite3_bind_int(s, 8, op->qos);
		sqlite3_bind_int(s, 9, (op->flags & OP_RETAIN) != 0);
		sqlite3_bind_int64(s, 10, (int64_t)op->b);
	}
	return step(s);
}

/* The statement for one operation, bound and run. */
static int apply_op(struct db *d, const struct batch *b, const struct op *op)
{
	uint8_t ids[4 * ENGINE_STORE_SUBIDS];
	sqlite3_stmt *s;
	int rc;
	switch (op->kind) {
	case OP_MSG_PUT:
		return apply_msg(d, b, op, false);
	case OP_WILL_PUT:
		return apply_msg(d, b, op, true);
	case OP_MSG_DEL:
		s = d->st[ST_MSG_DEL];
		sqlite3_bind_int64(s, 1, (int64_t)op->a);
		return step(s);
	case OP_SESS_PUT:
		s = d->st[ST_SESS_PUT];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_blob(s, 2, batch_data(b, op), (int)op->a, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, op->c);
		sqlite3_bind_int(s, 4, op->qos);
		sqlite3_bind_int64(s, 5, (int64_t)op->b);
		if (op->flags & OP_USER) /* NULL: anonymous */
			sqlite3_bind_blob(s, 6, batch_data(b, op) + op->a, (int)(op->len - op->a),
					  SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 6);
		sqlite3_bind_int(s, 7, op->pid);
		return step(s);
	case OP_SESS_DEL: {
		static const enum stmt_id dels[] = {ST_SESS_DEL, ST_SESS_DEL_SUBS, ST_SESS_DEL_QUEUE,
						    ST_SESS_DEL_FLIGHT, ST_SESS_DEL_IN, ST_SESS_DEL_WILL};
		for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
			s = d->st[dels[i]];
			sqlite3_bind_int64(s, 1, op->sid);
			if ((rc = step(s)) != SQLITE_OK)
				return rc;
		}
		return SQLITE_OK;
	}
	case OP_SUB_PUT:
	case OP_SUB_DEL:
		s = d->st[op->kind == OP_SUB_PUT ? ST_SUB_PUT : ST_SUB_DEL];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_blob(s, 2, batch_data(b, op), (int)op->len, SQLITE_STATIC);
		if (op->kind == OP_SUB_PUT) {
			sqlite3_bind_int(s, 3, op->qos);
			sqlite3_bind_int64(s, 4, op->c);
		}
		return step(s);
	case OP_Q_PUT:
		s = d->st[ST_Q_PUT];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_int64(s, 2, (int64_t)op->b);
		sqlite3_bind_int64(s, 3, (int64_t)op->a);
		sqlite3_bind_int(s, 4, op->qos);
		sqlite3_bind_int(s, 5, op->flags);
		bind_sub_ids(s, 6, op, ids);
		return step(s);
	case OP_Q_DEL:
		s = d->st[ST_Q_DEL];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_int64(s, 2, (int64_t)op->b);
		return step(s);
	case OP_F_PUT:
		s = d->st[ST_F_PUT];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_int(s, 2, op->pid);
		sqlite3_bind_int64(s, 3, (int64_t)op->b);
		sqlite3_bind_int(s, 4, op->state);
		sqlite3_bind_int64(s, 5, (int64_t)op->a);
		sqlite3_bind_int(s, 6, op->qos);
		sqlite3_bind_int(s, 7, op->flags);
		bind_sub_ids(s, 8, op, ids);
		return step(s);
	case OP_F_REL:
	case OP_F_DEL:
	case OP_IN_PUT:
	case OP_IN_DEL: {
		enum stmt_id id = op->kind == OP_F_REL ? ST_F_REL : op->kind == OP_F_DEL ? ST_F_DEL
				  : op->kind == OP_IN_PUT ? ST_IN_PUT : ST_IN_DEL;
		s = d->st[id];
		sqlite3_bind_int64(s, 1, op->sid);
		sqlite3_bind_int(s, 2, op->pid);
		return step(s);
	}
	case OP_WILL_DEL:
		s = d->st[ST_WILL_DEL];
		sqlite3_bind_int64(s, 1, op->sid);
		return step(s);
	case OP_RET_PUT:
	case OP_RET_DEL:
		s = d->st[op->kind == OP_RET_PUT ? ST_RET_PUT : ST_RET_DEL];
		sqlite3_bind_blob(s, 1, batch_data(b, op), (int)op->len, SQLITE_STATIC);
		if (op->kind == OP_RET_PUT)
			sqlite3_bind_int64(s, 2, (int64_t)op->a);
		return step(s);
	case OP_HIST_PUT:
	case OP_HIST_DEL:
		s = d->st[op->kind == OP_HIST_PUT ? ST_HIST_PUT : ST_HIST_DEL];
		sqlite3_bind_blob(s, 1, batch_data(b, op), (int)op->len, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (int64_t)op->b);
		if (op->kind == OP_HIST_PUT) {
			sqlite3_bind_int64(s, 3, (int64_t)op->at);
			sqlite3_bind_int64(s, 4, (int64_t)op->a);
		}
		return step(s);
	}
	return SQLITE_INTERNAL;
}

int writer_apply(struct db *d, const struct batch *b, char *err, size_t errlen)
{
	int rc = step(d->st[ST_BEGIN]);
	for (uint32_t i = 0; rc == SQLITE_OK && i < b->n; i++)
		if (!b->ops[i].dead)
			rc = apply_op(d, b, &b->ops[i]);
	if (rc == SQLITE_OK)
		rc = step(d->st[ST_COMMIT]);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(d->h));
		if (!sqlite3_get_autocommit(d->h))
			step(d->st[ST_ROLLBACK]);
	}
	return rc;
}
