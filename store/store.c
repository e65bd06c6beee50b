/*
 * store.c - the store's lifecycle: open (exclusive lock, checks, a damaged
 * file moved aside when asked, recovery into the engine, the writer
 * thread), the hand-over of batches at the end of loop passes, completions
 * back on the engine's thread, failures and recovery from them, close.
 *
 * The writer thread and the engine's thread share only struct store's
 * "work" fields, under mu: the engine thread hands a batch over (work),
 * the writer sets the result and calls notify; the batch goes back to the
 * engine thread in store_completed(). A failed commit (disk full, I/O
 * error) is retried every second with the same batch while new changes
 * gather in the next one; acknowledgements wait for the retry that
 * succeeds, and the engine refuses what it cannot keep meanwhile.
 */
#include "store/internal.h"

#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MS 1000
/* The checkpointer copies the WAL into the database once it holds this many
 * pages (4 MiB at 4 KiB pages: SQLite's own auto-checkpoint size). */
#define CKPT_PAGES 1000

/* Periodic mode keeps memory bounded: a batch this large is committed
 * before its period is over. */
#define PERIODIC_MAX_OPS 1000000u
#define PERIODIC_MAX_BYTES (64u << 20)

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the writer thread ------------------------------------------------------ */

static void *store_writer(void *arg)
{
	struct store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->stopping && (!st->work || st->work_done))
			pthread_cond_wait(&st->cv, &st->mu);
		if (!st->work || st->work_done)
			break; /* stopping with nothing to write */
		struct batch *b = st->work;
		pthread_mutex_unlock(&st->mu);
		char why[sizeof st->result_why] = "";
		uint64_t t0 = mono_us();
		int rc = writer_apply(&st->db, b, why, sizeof why);
		uint64_t us = mono_us() - t0;
		pthread_mutex_lock(&st->mu);
		st->result = rc;
		st->result_us = us;
		st->result_new = true;
		snprintf(st->result_why, sizeof st->result_why, "%s", why);
		if (rc == SQLITE_OK) {
			st->work_done = true;
			st->stats.commits++;
			st->stats.ops += b->live;
			st->stats.messages += b->msgs;
			st->stats.commit_us_total += us;
			if (us > st->stats.commit_us_max)
				st->stats.commit_us_max = us;
		} else {
			st->stats.errors++;
		}
		pthread_cond_broadcast(&st->cv); /* store_close may be waiting */
		if (st->notify)
			st->notify(st->notify_arg);
		if (rc != SQLITE_OK) {
			/* the same batch again in a while (space may come back) */
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += RETRY_MS / 1000;
			while (!st->stopping &&
			       pthread_cond_timedwait(&st->cv, &st->mu, &ts) != ETIMEDOUT)
				;
			if (st->stopping && st->work == b)
				break;
		}
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* ---- the checkpointer ---------------------------------------------------- */

/* SQLite's WAL hook on the writer's connection (after each commit, on the
 * writer thread): replaces auto-checkpointing, which would copy the WAL
 * inside a commit, with a word to the checkpointer. */
static int store_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct store *st = arg;
	(void)db;
	(void)name;
	st->wal_pages = pages;
	int limit = st->cfg.checkpoint_pages ? (int)st->cfg.checkpoint_pages : CKPT_PAGES;
	if (pages >= limit && st->ckpt_started) {
		pthread_mutex_lock(&st->mu);
		st->ckpt_wanted = true;
		pthread_cond_signal(&st->ckpt_cv);
		pthread_mutex_unlock(&st->mu);
	}
	return SQLITE_OK;
}

/* Runs PASSIVE checkpoints on its own connection: they copy what no
 * reader needs while the writer goes on committing, so a commit never
 * waits for the database file's writes and fsync. */
static void *store_checkpointer(void *arg)
{
	struct store *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->stopping && !st->ckpt_wanted)
			pthread_cond_wait(&st->ckpt_cv, &st->mu);
		if (st->stopping)
			break;
		st->ckpt_wanted = false;
		pthread_mutex_unlock(&st->mu);
		int rc = sqlite3_wal_checkpoint_v2(st->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&st->mu);
		if (rc == SQLITE_OK)
			st->stats.checkpoints++;
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* Opens the checkpointer's connection and thread. Without them (an error)
 * the writer checkpoints itself, as SQLite does by default. */
static void store_checkpointer_start(struct store *st, bool sync_full)
{
	if (sqlite3_open_v2(st->path, &st->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    "midge") != SQLITE_OK) {
		sqlite3_close(st->ckpt);
		st->ckpt = NULL;
		return;
	}
	sqlite3_busy_timeout(st->ckpt, 2000);
	sqlite3_exec(st->ckpt, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
		     NULL, NULL, NULL);
	if (pthread_create(&st->ckpt_thread, NULL, store_checkpointer, st) != 0) {
		sqlite3_close(st->ckpt);
		st->ckpt = NULL;
		return;
	}
	st->ckpt_started = true;
	sqlite3_wal_hook(st->db.h, store_wal_hook, st);
}

/* Stops the checkpointer and closes its connection (before the writer's:
 * the last connection to close folds the WAL into the database). */
static void store_checkpointer_stop(struct store *st)
{
	if (st->ckpt_started) {
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		pthread_cond_broadcast(&st->ckpt_cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->ckpt_thread, NULL);
		st->ckpt_started = false;
	}
	sqlite3_close(st->ckpt);
	st->ckpt = NULL;
}

/* ---- open ------------------------------------------------------------------ */

/* Gives the database file (open on fd) and the -wal and -shm files found
 * beside it to the user midge will run as (cfg.set_owner). Returns 0 or
 * -1 with err. */
static int store_give(struct store *st, int fd, char *err, size_t errlen)
{
	static const char *const tails[] = {"-wal", "-shm"};
	if (!st->cfg.set_owner)
		return 0;
	/* root gives away what it opened in a directory that user may write:
	 * never a file linked from elsewhere (open refused symlinks) */
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
		snprintf(err, errlen, "%s: not a plain file with one link; midge running as root "
			 "will not give it to user %lu", st->path, (unsigned long)st->cfg.uid);
		return -1;
	}
	if (fchown(fd, st->cfg.uid, st->cfg.gid) < 0) {
		snprintf(err, errlen, "%s: cannot give it to user %lu: %s", st->path,
			 (unsigned long)st->cfg.uid, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < 2; i++) {
		char p[4200];
		snprintf(p, sizeof p, "%s%s", st->path, tails[i]);
		if (lchown(p, st->cfg.uid, st->cfg.gid) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "%s: cannot give it to user %lu: %s", p,
				 (unsigned long)st->cfg.uid, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Takes an exclusive lock on the database file for this process: a second
 * midge on the same file would corrupt both brokers' view of it. The file
 * is created here, 0600 (it holds every client's messages), and given to
 * the run-as user when there is one. */
static int store_lock(struct store *st, char *err, size_t errlen)
{
	int flags = O_RDWR | O_CREAT | O_CLOEXEC | (st->cfg.set_owner ? O_NOFOLLOW : 0);
	st->lock_fd = open(st->path, flags, 0600);
	if (st->lock_fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s%s", st->path, strerror(errno),
			 errno == ELOOP ? " (a symbolic link: midge started as root with 'user' "
					  "opens only the file itself)" : "");
		return -1;
	}
	if (store_give(st, st->lock_fd, err, errlen) < 0)
		return -1;
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "%s is in use by another midge (it holds the lock): %s",
			 st->path, errno == EWOULDBLOCK ? "stop it or use another persistence_file"
						       : strerror(errno));
		return -1;
	}
	return 0;
}

/* Moves the damaged database (and its WAL and shared-memory files) to
 * PATH.damaged-SECONDS. Returns 0 or -1 with err. */
static int store_move_aside(struct store *st, uint64_t now_ms, char *moved, size_t movedlen,
			    char *err, size_t errlen)
{
	static const char *const tails[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		char from[4200], to[4300];
		snprintf(from, sizeof from, "%s%s", st->path, tails[i]);
		snprintf(to, sizeof to, "%s.damaged-%llu%s", st->path,
			 (unsigned long long)(now_ms / 1000), tails[i]);
		if (i == 0)
			snprintf(moved, movedlen, "%s", to);
		if (rename(from, to) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot move %s aside: %s", from, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void store_free(struct store *st)
{
	if (!st)
		return;
	store_checkpointer_stop(st);
	db_close(&st->db);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	front_free(st);
	batch_free(st->open);
	batch_free(st->spare);
	batch_free(st->work);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	pthread_cond_destroy(&st->ckpt_cv);
	free(st->path);
	free(st);
}

struct store *store_open(const struct store_config *cfg, struct engine *e,
			 void (*notify)(void *arg), void *arg, uint64_t now_ms, bool *retry,
			 char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	char why[512] = "";
	bool damaged = false;
	*retry = false;
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->cfg = *cfg;
	st->lock_fd = -1;
	st->e = e;
	st->notify = notify;
	st->notify_arg = arg;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	pthread_cond_init(&st->ckpt_cv, NULL);
	front_init(st);
	st->path = strdup(cfg->path);
	st->open = batch_new();
	st->spare = batch_new();
	if (!st->path || !st->open || !st->spare) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	st->cfg.path = st->path;
	if (store_lock(st, err, errlen) < 0)
		goto fail;
	uint64_t t0 = mono_us();
	bool full = cfg->sync == STORE_SYNC_ACK;
	int rc = db_open(&st->db, st->path, full, cfg->quick_check, &damaged, why, sizeof why);
	if (rc == 0 && db_prepare(&st->db, why, sizeof why) < 0) {
		db_close(&st->db);
		rc = -1;
	}
	if (rc == 0) {
		int rr = recover_run(st, st->db.h, now_ms, why, sizeof why);
		if (rr < 0) {
			damaged = rr == -1; /* a record the engine could not take */
			db_close(&st->db);
			rc = -1;
		}
	}
	if (rc < 0 && damaged && cfg->move_damaged) {
		/* start empty, the old file kept for inspection */
		char moved[4400];
		if (store_move_aside(st, now_ms, moved, sizeof moved, err, errlen) < 0)
			goto fail;
		snprintf(err, errlen, "%s is damaged (%s): moved to %s, starting with an empty store",
			 st->path, why, moved);
		/* the engine may hold part of what was recovered: the caller
		 * opens again with a fresh one */
		*retry = true;
		goto fail;
	}
	if (rc < 0) {
		if (damaged)
			snprintf(err, errlen,
				 "%s is damaged: %s. midge stopped rather than lose or misread what it "
				 "holds. Stop midge, keep a copy, then either move the file (and its "
				 "-wal file) aside, or set 'midge_persist_damaged move' to start with an "
				 "empty store after moving it to %s.damaged-TIME; 'sqlite3 %s .recover' "
				 "may save its content",
				 st->path, why, st->path, st->path);
		else
			snprintf(err, errlen, "%s: %s", st->path, why);
		goto fail;
	}
	/* Recovery reads every page once: the default small cache is enough
	 * for that, and a large one would only hold pages never read again.
	 * From now on the hot pages (queues, windows) stay cached. */
	sqlite3_exec(st->db.h, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	st->stats.recovered_ms = (mono_us() - t0) / 1000;
	struct engine_store front = store_front;
	front.ctx = st;
	engine_store_attach(e, &front);
	if (engine_restore_end(e, now_ms) < 0) {
		snprintf(err, errlen, "out of memory");
		engine_store_attach(e, NULL);
		goto fail;
	}
	st->last_commit_ms = now_ms;
	store_checkpointer_start(st, full);
	if (pthread_create(&st->thread, NULL, store_writer, st) != 0) {
		snprintf(err, errlen, "cannot start the writer thread");
		engine_store_attach(e, NULL);
		goto fail;
	}
	st->thread_started = true;
	return st;
fail:
	store_free(st);
	return NULL;
}

/* ---- passes and completions ------------------------------------------------- */

/* Whether the open batch should go to the writer now. */
static bool store_due(const struct store *st, uint64_t now_ms)
{
	const struct batch *b = st->open;
	if (!b->n)
		return false;
	if (st->cfg.sync == STORE_SYNC_ACK)
		return !st->cfg.commit_delay_ms || now_ms >= b->first_ms + st->cfg.commit_delay_ms;
	if (b->n >= PERIODIC_MAX_OPS || b->data_len >= PERIODIC_MAX_BYTES)
		return true;
	if (st->cfg.period_changes)
		return b->live >= st->cfg.period_changes;
	return st->cfg.period_s && now_ms >= st->last_commit_ms + (uint64_t)st->cfg.period_s * 1000;
}

uint64_t store_next_due(const struct store *st, uint64_t now_ms)
{
	const struct batch *b = st->open;
	if (!b->n || st->work)
		return UINT64_MAX;
	uint64_t at;
	if (st->cfg.sync == STORE_SYNC_ACK)
		at = b->first_ms + st->cfg.commit_delay_ms;
	else if (st->cfg.period_s && !st->cfg.period_changes)
		at = st->last_commit_ms + (uint64_t)st->cfg.period_s * 1000;
	else
		return UINT64_MAX;
	return at > now_ms ? at - now_ms : 0;
}

/* The open batch is done with: the engine learns it is durable. */
static void store_durable(struct store *st, uint64_t num, uint64_t now_ms)
{
	if (num > st->durable_num)
		st->durable_num = num;
	st->last_commit_ms = now_ms;
	engine_store_durable(st->e, st->durable_num, now_ms);
}

void store_pass(struct store *st, uint64_t now_ms)
{
	struct batch *b = st->open;
	if (b->n && !b->first_ms)
		b->first_ms = now_ms ? now_ms : 1;
	if (st->work || !store_due(st, now_ms))
		return;
	if (!b->live) { /* everything cancelled: durable as it is */
		uint64_t num = b->num;
		batch_reset(b);
		store_durable(st, num, now_ms);
		return;
	}
	/* hand it over; the spare becomes the open batch */
	pthread_mutex_lock(&st->mu);
	st->work = b;
	st->work_done = false;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	st->open = st->spare;
	st->spare = NULL;
	batch_reset(st->open);
}

void store_completed(struct store *st, uint64_t now_ms, struct store_change *chg)
{
	memset(chg, 0, sizeof *chg);
	pthread_mutex_lock(&st->mu);
	bool seen = st->result_new;
	int rc = st->result;
	bool done = st->work_done;
	struct batch *b = done ? st->work : NULL;
	if (seen)
		st->result_new = false;
	if (done) {
		st->work = NULL;
		st->work_done = false;
	}
	if (seen && rc != SQLITE_OK && !st->failing) {
		chg->changed = true;
		chg->failing = true;
		snprintf(chg->why, sizeof chg->why, "%s", st->result_why);
	}
	pthread_mutex_unlock(&st->mu);
	if (chg->failing) {
		st->failing = true;
		st->stats.failing = true;
		engine_store_failing(st->e, true, "the persistence store cannot write");
	}
	if (b) {
		uint64_t num = b->num;
		batch_reset(b);
		st->spare = b;
		if (st->failing) {
			st->failing = false;
			st->stats.failing = false;
			chg->changed = true;
			chg->failing = false;
			engine_store_failing(st->e, false, NULL);
		}
		store_durable(st, num, now_ms);
		store_pass(st, now_ms);
	}
}

/* ---- close ------------------------------------------------------------------- */

void store_quiet(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->notify = NULL; /* the writer calls it under mu: none is running after this */
	pthread_mutex_unlock(&st->mu);
}

int store_close(struct store *st, uint64_t now_ms, char *err, size_t errlen)
{
	if (!st)
		return 0;
	int rc = 0;
	engine_store_attach(st->e, NULL);
	pthread_mutex_lock(&st->mu);
	st->notify = NULL; /* the loop that listened may be gone */
	pthread_mutex_unlock(&st->mu);
	if (st->thread_started) {
		/* what is being written, then what is left, each given a few tries */
		for (int round = 0; round < 2; round++) {
			pthread_mutex_lock(&st->mu);
			if (!st->work && st->open->live) {
				st->work = st->open;
				st->open = st->spare ? st->spare : batch_new();
				st->spare = NULL;
				st->work_done = false;
				pthread_cond_broadcast(&st->cv);
			}
			uint64_t t0 = mono_us();
			while (st->work && !st->work_done && mono_us() - t0 < 5u * RETRY_MS * 1000) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 100 * 1000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&st->cv, &st->mu, &ts);
			}
			bool ok = !st->work || st->work_done;
			if (ok && st->work) {
				batch_free(st->spare);
				st->spare = st->work;
				batch_reset(st->spare);
				st->work = NULL;
				st->work_done = false;
			}
			pthread_mutex_unlock(&st->mu);
			if (!ok) {
				snprintf(err, errlen, "%s: changes since the last commit could not be written: %s",
					 st->path, st->result_why);
				rc = -1;
				break;
			}
		}
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		pthread_cond_broadcast(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	store_checkpointer_stop(st);
	(void)now_ms;
	store_free(st);
	return rc;
}

/* ---- the recovery fuzzer ------------------------------------------------------ */

int store_fuzz_recover(void *h, struct engine *e, uint64_t now_ms, uint64_t *ref_errors,
		       char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof *st);
	int rc = -1;
	*ref_errors = 0;
	if (!st)
		return -1;
	st->lock_fd = -1;
	st->e = e;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	pthread_cond_init(&st->ckpt_cv, NULL);
	front_init(st);
	st->open = batch_new();
	st->spare = batch_new();
	st->path = strdup(":memory:");
	if (!st->open || !st->spare || !st->path) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (db_check(h, err, errlen) < 0 || recover_run(st, h, now_ms, err, errlen) < 0)
		goto out;
	struct engine_store front = store_front;
	front.ctx = st;
	engine_store_attach(e, &front);
	engine_restore_end(e, now_ms);
	/* every session with an expiry ends: its references are released */
	engine_tick(e, now_ms + 100ull * 365 * 86400 * 1000);
	engine_store_attach(e, NULL);
	*ref_errors = st->ref_errors;
	rc = 0;
out:
	st->db.h = NULL; /* the caller's */
	store_free(st);
	return rc;
}

/* ---- figures --------------------------------------------------------------- */

void store_get_stats(struct store *st, struct store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->mu);
	out->db_bytes = db_size(st->path); /* asked for now and then, not per commit */
	out->fsyncs = atomic_load(&store_vfs_syncs);
	out->failing = st->failing;
}

void store_stats_reset_max(struct store *st)
{
	pthread_mutex_lock(&st->mu);
	st->stats.commit_us_max = 0;
	pthread_mutex_unlock(&st->mu);
}

const char *store_path(const struct store *st)
{
	return st->path;
}
