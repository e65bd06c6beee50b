/*
 * db.c - the database: opening it (WAL, synchronous, the fsync-counting
 * VFS), the schema (versioned with PRAGMA user_version, marked as midge's
 * with PRAGMA application_id), the checks that tell a damaged or foreign
 * file from a good one, and the prepared statements the writer uses.
 *
 * The layout is plain tables a user can read with the sqlite3 shell while
 * midge is stopped (docs/persistence.md); message bodies are in one table
 * and everything else refers to them by id.
 */
#include "store/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The tables, as sqlite_master keeps their text: checked at start-up. */
static const char *const db_tables[][2] = {
	{"meta", "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID"},
	{"sessions", "CREATE TABLE sessions(sid INTEGER PRIMARY KEY, client_id BLOB NOT NULL UNIQUE, "
		     "expiry INTEGER NOT NULL, protocol INTEGER NOT NULL, disconnected_at INTEGER NOT "
		     "NULL, user_name BLOB, listener INTEGER NOT NULL)"},
	{"subscriptions", "CREATE TABLE subscriptions(sid INTEGER NOT NULL, filter BLOB NOT NULL, "
			  "options INTEGER NOT NULL, sub_id INTEGER NOT NULL, PRIMARY KEY(sid, "
			  "filter)) WITHOUT ROWID"},
	{"messages", "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic BLOB NOT NULL, payload BLOB "
		     "NOT NULL, props BLOB NOT NULL, origin BLOB NOT NULL, origin_user BLOB, "
		     "origin_listener INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT "
		     "NULL, expiry_at INTEGER NOT NULL)"},
	{"queue", "CREATE TABLE queue(sid INTEGER NOT NULL, seq INTEGER NOT NULL, msg INTEGER NOT "
		  "NULL, qos INTEGER NOT NULL, flags INTEGER NOT NULL, sub_ids BLOB NOT NULL, PRIMARY "
		  "KEY(sid, seq)) WITHOUT ROWID"},
	{"inflight", "CREATE TABLE inflight(sid INTEGER NOT NULL, pid INTEGER NOT NULL, seq INTEGER "
		     "NOT NULL, state INTEGER NOT NULL, msg INTEGER NOT NULL, qos INTEGER NOT NULL, "
		     "flags INTEGER NOT NULL, sub_ids BLOB NOT NULL, PRIMARY KEY(sid, pid)) WITHOUT "
		     "ROWID"},
	{"incoming_qos2", "CREATE TABLE incoming_qos2(sid INTEGER NOT NULL, pid INTEGER NOT NULL, "
			  "PRIMARY KEY(sid, pid)) WITHOUT ROWID"},
	{"wills", "CREATE TABLE wills(sid INTEGER PRIMARY KEY, topic BLOB NOT NULL, payload BLOB NOT "
		  "NULL, props BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, delay "
		  "INTEGER NOT NULL)"},
	{"retained", "CREATE TABLE retained(topic BLOB PRIMARY KEY, msg INTEGER NOT NULL) WITHOUT "
		     "ROWID"},
	{"history", "CREATE TABLE history(filter BLOB NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT "
		    "NULL, msg INTEGER NOT NULL, PRIMARY KEY(filter, seq)) WITHOUT ROWID"},
};
#define DB_NTABLES (sizeof db_tables / sizeof db_tables[0])

static const char *const db_sql[ST__COUNT] = {
	[ST_MSG_PUT] = "INSERT OR REPLACE INTO messages VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
	[ST_MSG_DEL] = "DELETE FROM messages WHERE id=?1",
	[ST_SESS_PUT] = "INSERT OR REPLACE INTO sessions VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[ST_SESS_DEL] = "DELETE FROM sessions WHERE sid=?1",
	[ST_SESS_DEL_SUBS] = "DELETE FROM subscriptions WHERE sid=?1",
	[ST_SESS_DEL_QUEUE] = "DELETE FROM queue WHERE sid=?1",
	[ST_SESS_DEL_FLIGHT] = "DELETE FROM inflight WHERE sid=?1",
	[ST_SESS_DEL_IN] = "DELETE FROM incoming_qos2 WHERE sid=?1",
	[ST_SESS_DEL_WILL] = "DELETE FROM wills WHERE sid=?1",
	[ST_SUB_PUT] = "INSERT OR REPLACE INTO subscriptions VALUES(?1,?2,?3,?4)",
	[ST_SUB_DEL] = "DELETE FROM subscriptions WHERE sid=?1 AND filter=?2",
	[ST_Q_PUT] = "INSERT OR REPLACE INTO queue VALUES(?1,?2,?3,?4,?5,?6)",
	[ST_Q_DEL] = "DELETE FROM queue WHERE sid=?1 AND seq=?2",
	[ST_F_PUT] = "INSERT OR REPLACE INTO inflight VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
	[ST_F_REL] = "UPDATE inflight SET state=3, msg=0 WHERE sid=?1 AND pid=?2",
	[ST_F_DEL] = "DELETE FROM inflight WHERE sid=?1 AND pid=?2",
	[ST_IN_PUT] = "INSERT OR REPLACE INTO incoming_qos2 VALUES(?1,?2)",
	[ST_IN_DEL] = "DELETE FROM incoming_qos2 WHERE sid=?1 AND pid=?2",
	[ST_WILL_PUT] = "INSERT OR REPLACE INTO wills VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[ST_WILL_DEL] = "DELETE FROM wills WHERE sid=?1",
	[ST_RET_PUT] = "INSERT OR REPLACE INTO retained VALUES(?1,?2)",
	[ST_RET_DEL] = "DELETE FROM retained WHERE topic=?1",
	[ST_HIST_PUT] = "INSERT OR REPLACE INTO history VALUES(?1,?2,?3,?4)",
	[ST_HIST_DEL] = "DELETE FROM history WHERE filter=?1 AND seq=?2",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

static int db_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int db_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* One integer from a query (a PRAGMA). Returns 0 or the SQLite error. */
static int db_int(sqlite3 *h, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(h, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*out = 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

static bool db_is_damage(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB || rc == SQLITE_FORMAT ||
	       rc == SQLITE_SCHEMA || rc == SQLITE_MISMATCH || rc == SQLITE_RANGE;
}

/* Creates the tables in an empty database (also the recovery fuzzer's). */
int db_create(sqlite3 *h, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &msg);
	for (size_t i = 0; rc == SQLITE_OK && i < DB_NTABLES; i++)
		rc = sqlite3_exec(h, db_tables[i][1], NULL, NULL, &msg);
	if (rc == SQLITE_OK) {
		char sql[256];
		snprintf(sql, sizeof sql,
			 "PRAGMA application_id=%d; PRAGMA user_version=%d; "
			 "INSERT INTO meta VALUES('created_by','midge " PACKAGE_VERSION "'); COMMIT",
			 STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
		rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK) {
		db_fail(err, errlen, "cannot create the tables: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

int db_check(sqlite3 *h, char *err, size_t errlen)
{
	int64_t app = 0, version = 0, n = 0;
	int rc = db_int(h, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = db_int(h, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = db_int(h, "SELECT count(*) FROM sqlite_master", &n);
	if (rc != SQLITE_OK)
		return db_fail(err, errlen, "cannot read it: %s", sqlite3_errstr(rc));
	if (app != STORE_APPLICATION_ID)
		return db_fail(err, errlen,
			       "it is an SQLite database but not midge's (application_id %lld)",
			       (long long)app);
	if (version > STORE_SCHEMA_VERSION)
		return db_fail(err, errlen,
			       "it was written by a newer midge (schema %lld; this one reads %d)",
			       (long long)version, STORE_SCHEMA_VERSION);
	if (version < 1)
		return db_fail(err, errlen, "its schema version %lld is unknown", (long long)version);
	sqlite3_stmt *s;
	rc = sqlite3_prepare_v2(h, "SELECT sql FROM sqlite_master WHERE type='table' AND name=?1", -1,
				&s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(err, errlen, "cannot read its schema: %s", sqlite3_errstr(rc));
	int bad = -1;
	for (size_t i = 0; i < DB_NTABLES && bad < 0; i++) {
		sqlite3_bind_text(s, 1, db_tables[i][0], -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		const unsigned char *sql = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
		if (!sql || strcmp((const char *)sql, db_tables[i][1]) != 0)
			bad = (int)i;
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	if (bad >= 0)
		return db_fail(err, errlen, "table %s is missing or not as midge made it",
			       db_tables[bad][0]);
	return 0;
}

/* What the first bytes of an existing file say it is. Returns 0 when it
 * may be an SQLite database (or is empty), else -1 with err. */
static int db_sniff(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0; /* missing: created */
	unsigned char head[16] = {0};
	size_t n = fread(head, 1, sizeof head, f);
	fclose(f);
	if (n == 0)
		return 0;
	if (n == 16 && memcmp(head, "SQLite format 3", 16) == 0)
		return 0;
	/* Mosquitto's own format: "\0\xb5\0mosquitto db" */
	if (n >= 15 && memcmp(head, "\x00\xb5\x00mosquitto db", 15) == 0)
		return db_fail(err, errlen,
			       "it is a Mosquitto persistence file, which midge cannot read (set "
			       "persistence_file to another name; Mosquitto's queued messages are not "
			       "carried over)");
	return db_fail(err, errlen, "it is not an SQLite database");
}

int db_open(struct db *d, const char *path, bool sync_full, bool quick_check, bool *damaged,
	    char *err, size_t errlen)
{
	memset(d, 0, sizeof *d);
	*damaged = false;
	if (db_sniff(path, err, errlen) < 0) {
		*damaged = true;
		return -1;
	}
	if (store_vfs_register() < 0)
		return db_fail(err, errlen, "cannot set up SQLite");
	int rc = sqlite3_open_v2(path, &d->h,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 "midge");
	if (rc != SQLITE_OK) {
		db_fail(err, errlen, "cannot open it: %s",
			d->h ? sqlite3_errmsg(d->h) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(d->h, 1);
	sqlite3_busy_timeout(d->h, 2000);
	int64_t mode_ok = 0, n = 0;
	char *msg = NULL;
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cell_size_check=ON",
		 sync_full ? "FULL" : "NORMAL");
	rc = sqlite3_exec(d->h, pragmas, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		*damaged = db_is_damage(rc);
		db_fail(err, errlen, "cannot use it: %s", msg ? msg : sqlite3_errmsg(d->h));
		sqlite3_free(msg);
		goto fail;
	}
	rc = db_int(d->h, "PRAGMA journal_mode", &mode_ok);
	rc = rc == SQLITE_OK ? db_int(d->h, "SELECT count(*) FROM sqlite_master", &n) : rc;
	if (rc != SQLITE_OK) {
		*damaged = db_is_damage(rc);
		db_fail(err, errlen, "cannot read it: %s", sqlite3_errmsg(d->h));
		goto fail;
	}
	if (n == 0 && db_create(d->h, err, errlen) < 0)
		goto fail;
	if (db_check(d->h, err, errlen) < 0) {
		int64_t version = 0;
		*damaged = db_int(d->h, "PRAGMA user_version", &version) != SQLITE_OK ||
			   version <= STORE_SCHEMA_VERSION;
		goto fail;
	}
	if (quick_check) {
		sqlite3_stmt *s;
		rc = sqlite3_prepare_v2(d->h, "PRAGMA quick_check(1)", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
			const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
			if (!t || strcmp((const char *)t, "ok") != 0) {
				*damaged = true;
				db_fail(err, errlen, "quick_check finds it damaged: %s",
					t ? (const char *)t : sqlite3_errmsg(d->h));
				sqlite3_finalize(s);
				goto fail;
			}
			sqlite3_finalize(s);
		} else {
			*damaged = db_is_damage(rc);
			db_fail(err, errlen, "cannot check it: %s", sqlite3_errmsg(d->h));
			goto fail;
		}
	}
	return 0;
fail:
	sqlite3_close(d->h);
	d->h = NULL;
	return -1;
}

int db_prepare(struct db *d, char *err, size_t errlen)
{
	for (int i = 0; i < ST__COUNT; i++) {
		int rc = sqlite3_prepare_v3(d->h, db_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i],
					    NULL);
		if (rc != SQLITE_OK)
			return db_fail(err, errlen, "cannot prepare a statement: %s",
				       sqlite3_errmsg(d->h));
	}
	return 0;
}

void db_close(struct db *d)
{
	for (int i = 0; i < ST__COUNT; i++) {
		sqlite3_finalize(d->st[i]);
		d->st[i] = NULL;
	}
	if (d->h)
		sqlite3_close(d->h); /* the last connection checkpoints the WAL and removes it */
	d->h = NULL;
}

uint64_t db_size(const char *path)
{
	struct stat sb;
	uint64_t n = 0;
	char wal[4096];
	if (stat(path, &sb) == 0)
		n += (uint64_t)sb.st_size;
	snprintf(wal, sizeof wal, "%s-wal", path);
	if (stat(wal, &sb) == 0)
		n += (uint64_t)sb.st_size;
	return n;
}
