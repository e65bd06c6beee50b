/*
 * internal.h - what the store's rooms share. Not for the transport:
 * store.h is the store's interface.
 *
 * Rooms:
 *   store.c    lifecycle: open (lock, checks, recovery), pass, completion,
 *              close, figures
 *   front.c    the engine's store interface: operations of the open batch,
 *              cancellation, message references, tickets
 *   batch.c    batches: operations and the bytes they carry
 *   writer.c   the writer thread: a batch in one transaction
 *   db.c       the schema, its checks, the statements
 *   recover.c  reading the database back into the engine
 *   vfs.c      a SQLite VFS over the default one that counts fsyncs
 *              (and, for tests, fails writes on request)
 */
#ifndef MIDGE_STORE_INTERNAL_H
#define MIDGE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/store.h"
#include "store/store.h"

/* ---- batches (batch.c) --------------------------------------------------- */

enum op_kind {
	OP_MSG_PUT = 1, /* a: id, data: message (topic, payload, props, origin, user), qos, flags
			 * (OP_CLIENT, OP_USER), pid: the publisher's listener, b: expiry_at */
	OP_MSG_DEL,     /* a: id */
	OP_SESS_PUT,    /* sid, data: client id then user name, a: client id length, flags:
			 * OP_USER, pid: listener, c: expiry, qos: protocol, b: disconnected_at */
	OP_SESS_DEL,    /* sid */
	OP_SUB_PUT,     /* sid, data: filter, qos: options, c: sub_id */
	OP_SUB_DEL,     /* sid, data: filter */
	OP_Q_PUT,       /* sid, b: seq, a: msg, qos, flags, sub ids */
	OP_Q_DEL,       /* sid, b: seq */
	OP_F_PUT,       /* sid, pid, b: seq, state, a: msg (0 once released), qos, flags, sub ids */
	OP_F_REL,       /* sid, pid */
	OP_F_DEL,       /* sid, pid */
	OP_IN_PUT,      /* sid, pid */
	OP_IN_DEL,      /* sid, pid */
	OP_WILL_PUT,    /* sid, data: message, qos, flags, c: delay */
	OP_WILL_DEL,    /* sid */
	OP_RET_PUT,     /* data: topic, a: msg */
	OP_RET_DEL,     /* data: topic */
	OP_HIST_PUT,    /* data: filter, b: seq, c: -, a: msg, at */
	OP_HIST_DEL,    /* data: filter, b: seq */
};

#define OP_RETAIN 0x01 /* flags: the delivery's (or message's) retain flag */
#define OP_SHARED 0x02 /* flags: through a shared subscription */
#define OP_CLIENT 0x04 /* flags of OP_MSG_PUT: published by a client (else the broker) */
#define OP_USER 0x08   /* flags of OP_MSG_PUT, OP_SESS_PUT: a user name is there (else
			* anonymous) */

struct op {
	uint8_t kind;
	uint8_t dead; /* cancelled: the writer skips it */
	uint8_t qos;
	uint8_t flags;
	uint8_t state;
	uint8_t n_sub_ids;
	uint16_t pid;
	uint32_t c;
	uint32_t off, len; /* the bytes it carries, in the batch's data */
	int64_t sid;
	uint64_t a, b, at;
	uint32_t sub_ids[ENGINE_STORE_SUBIDS];
};

/* A message's bytes in a batch: lengths, then topic, payload, props,
 * origin (client id), the publisher's user name. */
struct op_msg_head {
	uint32_t topic_len, payload_len, props_len, origin_len, user_len;
};

struct batch {
	uint64_t num;      /* the ticket it stands for */
	struct op *ops;
	uint32_t n, cap;
	uint32_t live;     /* ops not dead */
	uint8_t *data;
	size_t data_len, data_cap;
	uint64_t first_ms; /* when its first operation came */
	uint32_t msgs;     /* OP_MSG_PUT among them (written, for the figures) */
};

struct batch *batch_new(void);
void batch_free(struct batch *b);
void batch_reset(struct batch *b);
/* A new operation at the end (zeroed but for kind), or NULL on OOM. */
struct op *batch_push(struct batch *b, uint8_t kind);
/* Copies n bytes into the batch's data for op (off, len). Returns 0 or -1. */
int batch_bytes(struct batch *b, struct op *op, const void *p, size_t n);
/* Copies a message's content (struct op_msg_head and its bytes); user
 * (the publisher's user name) may be NULL. */
int batch_message(struct batch *b, struct op *op, const struct midge_message *v,
		  const struct midge_str *user);
/* The message an OP_MSG_PUT / OP_WILL_PUT carries. */
void batch_message_view(const struct batch *b, const struct op *op, struct op_msg_head *h,
			const uint8_t **topic, const uint8_t **payload, const uint8_t **props,
			const uint8_t **origin, const uint8_t **user);
/* Copies two strings one after the other (a session's client id and user
 * name; b2 may be NULL). Returns 0 or -1. */
int batch_bytes2(struct batch *b, struct op *op, const void *p1, size_t n1, const void *p2,
		 size_t n2);
static inline const uint8_t *batch_data(const struct batch *b, const struct op *op)
{
	return b->data + op->off;
}
static inline void batch_kill(struct batch *b, struct op *op)
{
	if (!op->dead) {
		op->dead = 1;
		b->live--;
	}
}

/* ---- the database (db.c) ------------------------------------------------- */

enum stmt_id {
	ST_MSG_PUT, ST_MSG_DEL, ST_SESS_PUT, ST_SESS_DEL, ST_SESS_DEL_SUBS, ST_SESS_DEL_QUEUE,
	ST_SESS_DEL_FLIGHT, ST_SESS_DEL_IN, ST_SESS_DEL_WILL, ST_SUB_PUT, ST_SUB_DEL, ST_Q_PUT,
	ST_Q_DEL, ST_F_PUT, ST_F_REL, ST_F_DEL, ST_IN_PUT, ST_IN_DEL, ST_WILL_PUT, ST_WILL_DEL,
	ST_RET_PUT, ST_RET_DEL, ST_HIST_PUT, ST_HIST_DEL, ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST__COUNT
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *st[ST__COUNT];
};

/* Opens path (created with the schema when missing or empty) and checks it.
 * Returns 0, or -1 with err. damaged is set when the file is damaged or
 * not a midge database (as opposed to unreadable, locked, newer). */
int db_open(struct db *d, const char *path, bool sync_full, bool quick_check, bool *damaged,
	    char *err, size_t errlen);
/* Checks an already open handle (the recovery fuzzer's in-memory image):
 * application id, version, tables. Returns 0 or -1 with err. */
int db_check(sqlite3 *h, char *err, size_t errlen);
/* Creates midge's tables in an empty database. Returns 0 or -1 with err. */
int db_create(sqlite3 *h, char *err, size_t errlen);
int db_prepare(struct db *d, char *err, size_t errlen);
void db_close(struct db *d);
/* The file and its WAL, in bytes. */
uint64_t db_size(const char *path);

/* ---- the writer (writer.c) ----------------------------------------------- */

/* Applies b in one transaction and commits. Returns 0 or the SQLite error
 * code with err (rolled back). */
int writer_apply(struct db *d, const struct batch *b, char *err, size_t errlen);

/* ---- the fsync counter (vfs.c) ------------------------------------------- */

/* Registers "midge" over the default VFS (once). Returns 0 or -1. */
int store_vfs_register(void);
extern _Atomic uint64_t store_vfs_syncs;
/* Tests: nonzero makes every write and sync fail with that SQLite code
 * (SQLITE_FULL, SQLITE_IOERR_WRITE) until set back to 0. */
extern _Atomic int store_vfs_fault;

/* ---- the front (front.c) ------------------------------------------------- */

/* The store's record of one persistent session: the engine's handle. */
struct sess {
	struct sess *prev, *next; /* every live one, for store_close */
	int64_t sid;
	uint64_t qhead, qtail;    /* queue rows are seqs [qhead, qtail) */
};

struct msgref {
	uint64_t id;   /* 0: free cell */
	uint64_t batch; /* batch num holding its OP_MSG_PUT (cancellable while that is open) */
	uint32_t refs;
	uint32_t op;   /* index of the OP_MSG_PUT in that batch */
};

/* An index of the open batch's operations that a later one may cancel. */
struct openkey {
	uint64_t gen; /* the batch num it belongs to; others are free cells */
	uint8_t kind;
	int64_t sid;
	uint64_t n;
	uint32_t op;
};

struct store {
	struct store_config cfg;
	char *path;
	struct engine *e;
	struct db db;
	int lock_fd;
	/* engine thread */
	struct batch *open;
	struct batch *spare;
	uint64_t last_num;      /* the last batch number given */
	uint64_t durable_num;   /* the last batch number known durable */
	uint64_t last_commit_ms;
	int64_t next_sid;
	uint64_t flight_seq;
	struct sess *sessions;
	struct msgref *refs;    /* by message id, open addressing */
	uint32_t refs_cap, refs_n;
	struct openkey *keys;   /* by (kind, sid, n), at most half full */
	uint32_t keys_cap, keys_n;
	uint64_t keys_gen;
	uint64_t ref_errors;    /* unbalanced releases (a bug): counted, tests check 0 */
	bool failing;
	/* shared with the writer, under mu */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *work;     /* handed to the writer, until completed */
	bool work_done;         /* the writer finished work (result below) */
	bool stopping;
	int result;             /* 0 or the SQLite error of the last attempt */
	bool result_new;        /* result not yet seen by store_completed */
	char result_why[200];
	uint64_t result_us;
	void (*notify)(void *arg);
	void *notify_arg;
	struct store_stats stats; /* under mu for the writer's fields */
	/* the checkpointer: its own connection, so that copying the WAL into
	 * the database (and that file's fsync) is never on a commit's path */
	sqlite3 *ckpt;
	pthread_t ckpt_thread;
	bool ckpt_started;
	bool ckpt_wanted;       /* under mu: the WAL grew past CKPT_PAGES */
	pthread_cond_t ckpt_cv; /* the checkpointer's own: cv wakes the writer */
	int wal_pages;          /* the WAL's frames after the last commit (writer only) */
};

/* front.c */
extern const struct engine_store store_front;
void front_init(struct store *st);
void front_free(struct store *st);
/* A session record for recovery (sid from the database). */
struct sess *front_sess_new(struct store *st, int64_t sid);
/* Recovery: the stored messages and how many rows refer to each; those no
 * row refers to are deleted. Returns 0 or -1 on OOM. */
struct front_ref {
	uint64_t id;
	uint32_t refs;
};
int front_refs_load(struct store *st, const struct front_ref *v, size_t n);
/* The open batch gets a number (if it has none) and *op for a new
 * operation; NULL on OOM. */
struct op *front_op(struct store *st, uint8_t kind);

/* recover.c: returns 0, -1 when the database is damaged (a record the
 * engine could not take, a read that failed), -2 when the failure is not
 * the file's (out of memory, the engine not empty). */
int recover_run(struct store *st, sqlite3 *h, uint64_t now_ms, char *err, size_t errlen);

#endif
