/*
 * store.h - midge's persistence: the engine's store interface
 * (engine/store.h) on SQLite in WAL mode.
 *
 * Two halves, two threads:
 *   - the front (front.c) runs on the engine's thread: it turns the
 *     engine's calls into operations of the open batch, cancels pairs that
 *     meet in it (a delivery acknowledged before it was written is never
 *     written), counts references to message bodies (one row per message
 *     however many sessions queue it) and answers ticket();
 *   - the writer (writer.c) is a thread of its own that never touches
 *     engine state: it applies a batch in one transaction, commits (one
 *     fsync in ack mode), and signals back through the notify callback.
 * While the writer commits one batch the next one fills: group commit,
 * so a loaded broker makes many changes per fsync.
 *
 * The transport drives it: store_open() before the first connection
 * (recovery included), store_pass() at the end of every loop pass (the
 * batch goes to the writer when it is due and the writer idle),
 * store_completed() on the loop after notify, store_close() at the end.
 * Nothing here includes <uv.h>.
 */
#ifndef MIDGE_STORE_STORE_H
#define MIDGE_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct engine;
struct store;

/* The database layout's version (PRAGMA user_version). A database written
 * by a newer midge is refused rather than misread. */
#define STORE_SCHEMA_VERSION 1
/* PRAGMA application_id of a midge database: "MIDG". */
#define STORE_APPLICATION_ID 0x4d494447

enum store_sync {
	STORE_SYNC_ACK = 0,      /* acknowledgements wait for the commit (the default) */
	STORE_SYNC_PERIODIC = 1, /* commit every period_s (or period_changes); nothing waits */
};

struct store_config {
	const char *path;         /* the database file */
	enum store_sync sync;
	uint32_t period_s;        /* periodic: seconds between commits (0: only at exit) */
	uint32_t period_changes;  /* periodic, autosave_on_changes: changes between commits */
	uint32_t commit_delay_ms; /* ack: gather changes this long before a commit (0: one loop pass) */
	bool move_damaged;        /* a damaged database is moved aside and a new one started */
	bool quick_check;         /* PRAGMA quick_check at start-up (default on) */
	uint32_t checkpoint_pages; /* WAL pages that start a checkpoint (0: 1000, 4 MiB) */
	/* Started as root with `user`: the files are given to that user
	 * before privileges are dropped (SQLite gives its -wal and -shm files
	 * the database file's owner and mode). */
	bool set_owner;
	uid_t uid;
	gid_t gid;
};

/* Figures since store_open() (the $SYS topics and the bench's). */
struct store_stats {
	uint64_t commits;        /* transactions committed */
	uint64_t ops;            /* rows written or deleted */
	uint64_t messages;       /* message bodies written */
	uint64_t cancelled;      /* operations that met their opposite before being written */
	uint64_t changes;        /* engine calls received */
	uint64_t fsyncs;         /* fsync/fdatasync calls SQLite made */
	uint64_t errors;         /* failed commits */
	uint64_t lost;           /* changes not recorded for want of memory */
	uint64_t checkpoints;    /* WAL checkpoints run by the checkpointer */
	uint64_t commit_us_total;
	uint64_t commit_us_max;  /* since the last store_stats_reset_max() */
	uint64_t db_bytes;       /* database file + WAL, now */
	uint64_t recovered_sessions, recovered_messages, recovered_ms;
	bool failing;
};

/*
 * What store_completed() saw: a commit failed for the first time (failing
 * becomes true, why says what went wrong) or succeeded again after
 * failures. The transport logs it and emits the store event.
 */
struct store_change {
	bool changed;
	bool failing;
	char why[256];
};

/*
 * Opens (or creates) the database at cfg->path, checks it (SQLite
 * header, application id, schema version, tables, quick_check), rebuilds
 * the engine from it (engine_restore_*), attaches itself as e's store and
 * starts the writer thread. Call before the first connection and after
 * engine_history_add(). notify(arg) is called from the writer thread
 * after each commit (or failure); the caller then runs store_completed()
 * on the engine's thread. Returns NULL with err set when the database
 * cannot be used (a damaged or foreign file, a newer schema, another midge
 * holding it, an I/O error): start-up must stop. With cfg->move_damaged a
 * damaged file is moved aside instead: NULL with *retry set and err the
 * notice to log; the engine may hold part of what was read, so the caller
 * opens again with a fresh engine.
 */
struct store *store_open(const struct store_config *cfg, struct engine *e,
			 void (*notify)(void *arg), void *arg, uint64_t now_ms, bool *retry,
			 char *err, size_t errlen);

/* End of a loop pass: hands the open batch to the writer when it is due
 * (ack mode: always; periodic: per the period) and the writer is idle. */
void store_pass(struct store *st, uint64_t now_ms);

/* On the engine's thread after notify: completions reach the engine
 * (engine_store_durable), a failure or recovery is reported in *chg. */
void store_completed(struct store *st, uint64_t now_ms, struct store_change *chg);

/* Milliseconds until store_pass() should run again for a due batch
 * (commit_delay_ms or the period), or UINT64_MAX when nothing waits. */
uint64_t store_next_due(const struct store *st, uint64_t now_ms);

/* notify is not called any more (the loop that listened is closing);
 * store_close() still commits what is left. */
void store_quiet(struct store *st);

/* Commits what is left (waiting for the writer), stops it, closes the
 * database, detaches from the engine. Returns 0, or -1 when changes could
 * not be written (err says why). store_close(NULL) does nothing. */
int store_close(struct store *st, uint64_t now_ms, char *err, size_t errlen);

void store_get_stats(struct store *st, struct store_stats *out);
void store_stats_reset_max(struct store *st);

/*
 * The recovery fuzzer's entry (fuzz/fuzz_store.c): checks the database open
 * on h (an in-memory image) as store_open() would and recovers it into e
 * with a store that has no file and no writer, then expires every session
 * (time passes by a century), which releases what recovery counted.
 * Returns 0, or -1 with err when the image was refused. *ref_errors is the
 * number of releases the store could not match (0 unless the recovery
 * miscounted).
 */
int store_fuzz_recover(void *h, struct engine *e, uint64_t now_ms, uint64_t *ref_errors,
		       char *err, size_t errlen);

/* The database file's path as opened. */
const char *store_path(const struct store *st);

#endif
