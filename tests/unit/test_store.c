/*
 * test_store.c - the SQLite store (store/) under a real engine driven by a
 * fake io: what a broker kept comes back in a new engine after the store
 * was closed (or never closed: the writer's commits alone), acknowledgements
 * wait for commits, pairs cancel, damaged and foreign files stop the open
 * with a reason, faults on write and sync make the store fail and recover.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "store/internal.h"
#include "store/store.h"
#include "tests/unit/runner.h"

#define NC 6
#define OUTCAP 16384

struct tconn {
	struct engine_conn *c;
	char out[OUTCAP * 3];
	size_t n;
};

static struct engine *E;
static struct store *S;
static struct tconn C[NC];
static uint64_t NOW = 1700000000000ull;
static char DIR_[256];
static char PATH_[300];

/* notify from the writer thread */
static pthread_mutex_t nmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ncv = PTHREAD_COND_INITIALIZER;
static int NOTES;

static void on_notify(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nmu);
	NOTES++;
	pthread_cond_broadcast(&ncv);
	pthread_mutex_unlock(&nmu);
}

static int t_send(void *ctx, void *handle, const uint8_t *head, size_t hl, struct frame *tail,
		  bool droppable)
{
	struct tconn *t = handle;
	for (size_t i = 0; i < hl; i++)
		t->n += (size_t)snprintf(t->out + t->n, sizeof t->out - t->n, "%s%02x",
					 t->n ? " " : "", head[i]);
	for (size_t i = 0; tail && i < tail->len; i++)
		t->n += (size_t)snprintf(t->out + t->n, sizeof t->out - t->n, "%s%02x",
					 t->n ? " " : "", tail->data[i]);
	return 0;
}

static void t_close(void *ctx, void *handle)
{
}

static const struct engine_io IO = {NULL, t_send, t_close, NULL, NULL, NULL};

/* What connection i was sent since the last call. */
static const char *got(int i)
{
	static char buf[OUTCAP * 3];
	memcpy(buf, C[i].out, C[i].n + 1);
	C[i].n = 0;
	C[i].out[0] = '\0';
	return buf;
}

/* Connection i was sent exactly want since the last check. */
#define EXPECT(i, want)                                                                    \
	do {                                                                               \
		const char *g_ = got(i);                                                   \
		if (strcmp(g_, want) != 0)                                                 \
			fprintf(stderr, "\n  line %d conn %d\n  want: %s\n  got:  %s\n", __LINE__, \
				i, want, g_);                                                   \
		CU_ASSERT_STRING_EQUAL(g_, want);                                          \
	} while (0)

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;
	unsigned v;
	for (; *hex; hex++) {
		if (*hex == ' ')
			continue;
		sscanf(hex, "%2x", &v);
		out[n++] = (uint8_t)v;
		hex++;
	}
	return n;
}

static int feed(int i, const char *hex)
{
	uint8_t b[2048];
	struct codec_feed fo;
	size_t n = unhex(hex, b);
	return engine_conn_input(E, C[i].c, b, n, NOW, &fo);
}

static struct store_config config(void)
{
	struct store_config cfg = {0};
	cfg.path = PATH_;
	cfg.sync = STORE_SYNC_ACK;
	cfg.quick_check = true;
	return cfg;
}

/* A fresh engine and the store opened on it (NULL store: err holds why). */
static struct store *open_with(const struct store_config *cfg, char *err, size_t errlen)
{
	struct engine_config ec;
	engine_config_default(&ec);
	E = engine_new(&ec, &IO, NULL);
	CU_ASSERT_FATAL(E != NULL);
	CU_ASSERT_EQUAL(engine_history_add(E, "h/#", 5, 0), 0);
	memset(C, 0, sizeof C);
	bool retry;
	S = store_open(cfg, E, on_notify, NULL, NOW, &retry, err, errlen);
	return S;
}

static void open_ok(void)
{
	char err[1024] = "";
	struct store_config cfg = config();
	if (!open_with(&cfg, err, sizeof err))
		fprintf(stderr, "\nstore_open: %s\n", err);
	CU_ASSERT_FATAL(S != NULL);
}

/* Everything handed to the writer and acknowledged back. */
static void settle(void)
{
	struct store_change chg;
	for (int round = 0; round < 50; round++) {
		store_pass(S, NOW);
		if (!S->work && !S->open->n)
			return;
		pthread_mutex_lock(&nmu);
		int before = NOTES;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		while (NOTES == before && S->work)
			if (pthread_cond_timedwait(&ncv, &nmu, &ts) != 0)
				break;
		pthread_mutex_unlock(&nmu);
		store_completed(S, NOW, &chg);
	}
	CU_FAIL("store did not settle");
}

static void close_all(void)
{
	char err[256];
	for (int i = 0; i < NC; i++)
		if (C[i].c) {
			engine_conn_closed(E, C[i].c, NULL, NOW);
			C[i].c = NULL;
		}
	CU_ASSERT_EQUAL(S->ref_errors, 0);
	CU_ASSERT_EQUAL(store_close(S, NOW, err, sizeof err), 0);
	S = NULL;
	engine_free(E);
	E = NULL;
}

/* The broker dies: the engine is dropped without the store hearing of it
 * (kill -9); only what the writer committed is on disk. */
static void crash(void)
{
	char err[256];
	/* the open batch is lost with the process */
	batch_reset(S->open);
	engine_store_attach(E, NULL);
	store_close(S, NOW, err, sizeof err);
	S = NULL;
	memset(C, 0, sizeof C); /* connections die with it */
	engine_free(E);
	E = NULL;
}

/* Connection i sends connect_hex and, as a client does, waits for the
 * CONNACK (held until the commit of a new persistent session). */
static void conn(int i, const char *connect_hex)
{
	C[i].c = engine_conn_open(E, &C[i], "127.0.0.1", 1000, false, NOW);
	CU_ASSERT_FATAL(C[i].c != NULL);
	C[i].n = 0;
	if (feed(i, connect_hex) == ENGINE_CONN_HELD)
		settle();
}

static void gone(int i)
{
	engine_conn_closed(E, C[i].c, NULL, NOW);
	C[i].c = NULL;
}

static void setup_dir(void)
{
	snprintf(DIR_, sizeof DIR_, "/tmp/midge-test-store-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(DIR_) != NULL);
	snprintf(PATH_, sizeof PATH_, "%s/midge.db", DIR_);
}

static void cleanup_dir(void)
{
	char p[400];
	const char *tails[] = {"", "-wal", "-shm"};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", PATH_, tails[i]);
		unlink(p);
	}
	rmdir(DIR_);
}

/* CONNECT 3.1.1 client "s", clean 0, keepalive 60 / "p" clean 1. */
#define CONNECT_S "10 0d 00 04 4d 51 54 54 04 00 00 3c 00 01 73"
#define CONNECT_P "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 70"
/* CONNECT 5 client "w", clean 0, expiry 100, will "w"/"x" QoS 1 delay 60 */
#define CONNECT_W                                                                         \
	"10 1f 00 04 4d 51 54 54 05 0c 00 3c 05 11 00 00 00 64 00 01 77 05 18 00 00 00 3c 00 " \
	"01 77 00 01 78"

/* What a broker kept comes back: sessions, subscriptions, the queue in
 * order, in-flight deliveries resent with DUP, incoming QoS 2 ids, the
 * will, retained messages, the replay log, after a clean close or a crash. */
static void t_store_roundtrip(void)
{
	for (int crashing = 0; crashing < 2; crashing++) {
		setup_dir();
		open_ok();
		conn(0, CONNECT_S);
		EXPECT(0, "20 02 00 00");
		feed(0, "82 08 00 01 00 03 61 2f 23 02"); /* a/# QoS 2 */
		EXPECT(0, ""); /* the SUBACK waits for the commit */
		settle();
		EXPECT(0, "90 03 00 01 02");
		conn(1, CONNECT_P);
		got(1);
		/* one in flight to s (not acknowledged), then s goes: two more queued */
		feed(1, "32 09 00 03 61 2f 62 00 01 68 31");
		EXPECT(0, "32 09 00 03 61 2f 62 00 01 68 31");
		settle();
		EXPECT(1, "40 02 00 01");
		gone(0);
		feed(1, "34 09 00 03 61 2f 62 00 02 68 32 32 09 00 03 61 2f 62 00 03 68 33");
		feed(1, "33 08 00 03 68 2f 72 00 04 72"); /* retained, and in the log */
		settle();
		EXPECT(1, "50 02 00 02 40 02 00 03 40 02 00 04");
		/* w: a v5 session with a will, and an incoming QoS 2 id */
		conn(2, CONNECT_W);
		got(2);
		feed(2, "34 09 00 03 7a 2f 7a 00 09 00 71");
		settle();
		EXPECT(2, "50 03 00 09 10");
		struct store_stats sst;
		store_get_stats(S, &sst);
		CU_ASSERT(sst.commits >= 4);
		CU_ASSERT(sst.fsyncs >= sst.commits);
		if (crashing)
			crash();
		else
			close_all();

		NOW += 10000;
		open_ok();
		struct store_stats rs;
		store_get_stats(S, &rs);
		CU_ASSERT_EQUAL(rs.recovered_sessions, 2);
		conn(0, CONNECT_S);
		/* session present, h1 again with DUP and its packet id, then the queue */
		EXPECT(0, "20 02 01 00 3a 09 00 03 61 2f 62 00 01 68 31 "
					       "34 09 00 03 61 2f 62 00 02 68 32 "
					       "32 09 00 03 61 2f 62 00 03 68 33");
		/* the retained message */
		feed(0, "82 08 00 02 00 03 68 2f 72 00");
		settle();
		EXPECT(0, "31 06 00 03 68 2f 72 72 90 03 00 02 00");
		/* the log: replayed */
		feed(0, "82 14 00 03 00 0f 24 72 65 70 6c 61 79 2f 61 6c 6c 2f 68 2f 23 00");
		settle();
		EXPECT(0, "30 06 00 03 68 2f 72 72 90 03 00 03 00");
		/* w's incoming QoS 2 id: a resend is acknowledged, not routed */
		conn(2, CONNECT_W);
		EXPECT(2, "20 09 01 00 06 21 03 e8 22 00 0a");
		feed(2, "3c 09 00 03 7a 2f 7a 00 09 00 71");
		settle();
		EXPECT(2, "50 02 00 09");
		close_all();
		cleanup_dir();
	}
}

/* "s" (persistent, 3.1.1) subscribes to a/# at QoS 1 on connection 0,
 * durably. */
static void sub_s(void)
{
	conn(0, CONNECT_S);
	feed(0, "82 08 00 01 00 03 61 2f 23 01");
	settle();
	got(0);
}

/* Acknowledged to a connected persistent subscriber before the commit:
 * nothing of it is written, and its publisher's PUBACK still waited. */
static void t_store_cancel(void)
{
	setup_dir();
	open_ok();
	sub_s();
	conn(1, CONNECT_P);
	got(1);
	struct store_stats a, b;
	store_get_stats(S, &a);
	for (int i = 1; i <= 100; i++) {
		char hx[128];
		snprintf(hx, sizeof hx, "32 09 00 03 61 2f 62 00 %02x 68 69", i);
		feed(1, hx);
		snprintf(hx, sizeof hx, "40 02 00 %02x", i);
		feed(0, hx);
	}
	EXPECT(1, "");
	settle();
	store_get_stats(S, &b);
	CU_ASSERT_EQUAL(b.messages - a.messages, 0);
	CU_ASSERT_EQUAL(b.ops - a.ops, 0);
	CU_ASSERT(b.cancelled - a.cancelled >= 400);
	CU_ASSERT_EQUAL(strlen(got(1)), 100 * 12 - 1);
	close_all();
	cleanup_dir();
}

/* A commit that fails (disk full, I/O error): acknowledgements stay held,
 * the engine refuses QoS 1/2, and all of it resumes when writes work. */
static void t_store_fault(void)
{
	setup_dir();
	open_ok();
	sub_s();
	gone(0);
	/* a v5 publisher */
	conn(1, "10 0f 00 04 4d 51 54 54 05 02 00 3c 00 00 02 70 35");
	got(1);
	settle();
	atomic_store(&store_vfs_fault, SQLITE_FULL);
	feed(1, "32 0a 00 03 61 2f 62 00 01 00 68 31");
	store_pass(S, NOW);
	pthread_mutex_lock(&nmu);
	int before = NOTES;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 3;
	while (NOTES == before && pthread_cond_timedwait(&ncv, &nmu, &ts) == 0)
		;
	pthread_mutex_unlock(&nmu);
	struct store_change chg;
	store_completed(S, NOW, &chg);
	CU_ASSERT(chg.changed && chg.failing);
	CU_ASSERT(strstr(chg.why, "full") != NULL);
	EXPECT(1, ""); /* not acknowledged */
	/* refused now (0x97), behind the PUBACK still held: the order stays */
	feed(1, "32 0a 00 03 61 2f 62 00 02 00 68 32");
	EXPECT(1, "");
	/* space again: the retry commits, the held PUBACK goes out */
	atomic_store(&store_vfs_fault, 0);
	memset(&chg, 0, sizeof chg);
	for (int i = 0; i < 40 && !chg.changed; i++) {
		usleep(100000);
		store_completed(S, NOW, &chg);
	}
	CU_ASSERT(chg.changed && !chg.failing);
	const char *o = got(1);
	CU_ASSERT(strncmp(o, "40 02 00 01 40 29 00 02 97 ", 27) == 0);
	feed(1, "32 0a 00 03 61 2f 62 00 03 00 68 33");
	settle();
	EXPECT(1, "40 02 00 03");
	close_all();
	/* both accepted messages are there */
	open_ok();
	conn(0, CONNECT_S);
	EXPECT(0, "20 02 01 00 32 09 00 03 61 2f 62 00 01 68 31 "
				       "32 09 00 03 61 2f 62 00 02 68 33");
	close_all();
	cleanup_dir();
}

/* The checkpointer folds the WAL into the database beside the commits;
 * what was committed survives a crash whatever the checkpoints did. */
static void t_store_checkpoints(void)
{
	char err[512], hx[128];
	setup_dir();
	struct store_config cfg = config();
	cfg.checkpoint_pages = 4;
	CU_ASSERT_FATAL(open_with(&cfg, err, sizeof err) != NULL);
	sub_s();
	gone(0);
	conn(1, CONNECT_P);
	for (int i = 0; i < 200; i++) {
		snprintf(hx, sizeof hx, "32 09 00 03 61 2f 62 00 %02x %02x 68", 1 + i % 250, i);
		feed(1, hx);
		settle();
	}
	struct store_stats st;
	for (int i = 0; i < 50; i++) { /* the checkpointer runs on its own */
		store_get_stats(S, &st);
		if (st.checkpoints)
			break;
		usleep(20000);
	}
	CU_ASSERT(st.checkpoints > 0);
	crash();
	open_ok();
	conn(0, CONNECT_S);
	const char *o = got(0);
	/* CONNACK and 200 PUBLISH of 11 bytes: 12 + 200 * 33 - 1 characters */
	CU_ASSERT_EQUAL(strlen(o), 12 + 200 * 33 - 1);
	close_all();
	cleanup_dir();
}

/* Periodic mode: nothing waits; the changes are committed per period. */
static void t_store_periodic(void)
{
	setup_dir();
	char err[512];
	struct store_config cfg = config();
	cfg.sync = STORE_SYNC_PERIODIC;
	cfg.period_changes = 1000;
	CU_ASSERT_FATAL(open_with(&cfg, err, sizeof err) != NULL);
	conn(0, CONNECT_S);
	feed(0, "82 08 00 01 00 03 61 2f 23 01");
	EXPECT(0, "20 02 00 00 90 03 00 01 01");
	store_pass(S, NOW);
	CU_ASSERT_PTR_NULL(S->work); /* not due: 3 changes of 1000 */
	close_all();
	cleanup_dir();
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	CU_ASSERT_FATAL(f != NULL);
	fwrite(p, 1, n, f);
	fclose(f);
}

/* Runs SQL on the database file outside midge (a user, a bad disk). */
static void sql(const char *text)
{
	sqlite3 *h;
	CU_ASSERT_FATAL(sqlite3_open(PATH_, &h) == SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(h, text, NULL, NULL, &msg) != SQLITE_OK)
		fprintf(stderr, "\nsql: %s\n", msg);
	sqlite3_free(msg);
	sqlite3_close(h);
}

/* One row of a query on the database file, its columns joined by '|'
 * (NULL as "NULL"), or "" when there is none. */
static const char *sql_row(const char *query)
{
	static char buf[512];
	sqlite3 *h;
	sqlite3_stmt *st;
	buf[0] = '\0';
	CU_ASSERT_FATAL(sqlite3_open(PATH_, &h) == SQLITE_OK);
	if (sqlite3_prepare_v2(h, query, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		size_t k = 0;
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *v = sqlite3_column_type(st, i) == SQLITE_NULL
						? "NULL"
						: (const char *)sqlite3_column_text(st, i);
			k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s", i ? "|" : "", v);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(h);
	return buf;
}

/* Who a session and a retained message belong to is stored (the session's
 * user name and listener, the publisher's), and kept when recovery
 * rewrites a session that was connected at the crash. */
static void t_store_owners(void)
{
	setup_dir();
	open_ok();
	/* "alice" on listener 3, clean session 0, subscribes to r */
	C[0].c = engine_conn_open(E, &C[0], "127.0.0.1", 1000, false, NOW);
	CU_ASSERT_FATAL(C[0].c != NULL);
	CU_ASSERT_EQUAL(engine_conn_set_listener(C[0].c, 3, 0, false, NULL), 0);
	CU_ASSERT_EQUAL(feed(0, "10 14 00 04 4d 51 54 54 04 80 00 3c 00 01 73 00 05 61 6c 69 63 65"),
			ENGINE_CONN_HELD);
	settle(); /* the CONNACK of a new persistent session waits for its commit */
	EXPECT(0, "20 02 00 00");
	feed(0, "82 06 00 01 00 01 72 01");
	/* "bob" on listener 4 (clean) retains "x" on r, QoS 1 */
	C[1].c = engine_conn_open(E, &C[1], "127.0.0.1", 1001, false, NOW);
	CU_ASSERT_FATAL(C[1].c != NULL);
	CU_ASSERT_EQUAL(engine_conn_set_listener(C[1].c, 4, 0, false, NULL), 0);
	feed(1, "10 12 00 04 4d 51 54 54 04 82 00 3c 00 01 70 00 03 62 6f 62");
	feed(1, "33 06 00 01 72 00 01 78");
	/* anonymous "q" (clean session 0) */
	conn(2, "10 0d 00 04 4d 51 54 54 04 00 00 3c 00 01 71");
	settle();
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT user_name, listener FROM sessions WHERE client_id=CAST('s' AS BLOB)"),
			       "alice|3");
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT user_name, listener FROM sessions WHERE client_id=CAST('q' AS BLOB)"),
			       "NULL|0");
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT origin, origin_user, origin_listener FROM messages m "
				       "JOIN retained r ON r.msg = m.id"),
			       "p|bob|4");
	/* the broker's own retained message: listener -1, no user */
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"b", 1, "y", 1, 1, true, NOW), 0);
	settle();
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT origin, origin_user, origin_listener FROM messages m "
				       "JOIN retained r ON r.msg = m.id WHERE r.topic = CAST('b' AS BLOB)"),
			       "|NULL|-1");
	crash();
	open_ok();
	settle(); /* recovery rewrote s and q: connected at the crash */
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT user_name, listener, disconnected_at > 0 FROM sessions "
				       "WHERE client_id=CAST('s' AS BLOB)"),
			       "alice|3|1");
	CU_ASSERT_STRING_EQUAL(sql_row("SELECT user_name, listener FROM sessions WHERE client_id=CAST('q' AS BLOB)"),
			       "NULL|0");
	close_all();
	cleanup_dir();
}

static void expect_refused(const char *what)
{
	char err[2048] = "";
	struct store_config cfg = config();
	CU_ASSERT_PTR_NULL(open_with(&cfg, err, sizeof err));
	if (!strstr(err, what))
		fprintf(stderr, "\n  want \"%s\" in: %s\n", what, err);
	CU_ASSERT(strstr(err, what) != NULL);
	engine_free(E);
	E = NULL;
}

/* Files that are not a good midge database stop the open with a reason. */
static void t_store_refuses(void)
{
	setup_dir();
	write_file(PATH_, "hello, this is not a database at all", 36);
	expect_refused("not an SQLite database");
	write_file(PATH_, "\x00\xb5\x00mosquitto db\x00\x00\x00\x06", 19);
	expect_refused("Mosquitto persistence file");
	unlink(PATH_);
	sql("CREATE TABLE t(x)");
	expect_refused("not midge's");
	unlink(PATH_);
	/* a newer midge's database */
	open_ok();
	close_all();
	sql("PRAGMA user_version=99");
	expect_refused("newer midge");
	sql("PRAGMA user_version=1");
	/* a queue row naming a message that is not there */
	sql("INSERT INTO sessions VALUES(7, 's', 100, 4, 1, NULL, 0)");
	sql("INSERT INTO queue VALUES(7, 0, 42, 1, 0, x'')");
	expect_refused("table queue: a queued delivery names a message that is not stored");
	sql("DELETE FROM queue");
	sql("INSERT INTO messages VALUES(42, 'a/+', 'x', x'', x'', NULL, 0, 1, 0, 0)");
	expect_refused("table messages: a message topic is not a valid topic name");
	sql("UPDATE messages SET topic='a/b', qos=7");
	expect_refused("out of range");
	sql("DELETE FROM messages");
	sql("INSERT INTO inflight VALUES(7, 0, 1, 1, 42, 1, 0, x'')");
	expect_refused("table inflight");
	sql("DELETE FROM inflight");
	/* the file damaged in the middle: a page overwritten */
	open_ok();
	for (int i = 0; i < 200; i++) {
		char hx[64];
		conn(1, CONNECT_P);
		snprintf(hx, sizeof hx, "31 0a 00 05 72 2f %02x %02x %02x 78", 0x61 + i % 26,
			 0x61 + (i / 26) % 26, 0x61 + i / 676);
		feed(1, hx);
		gone(1);
	}
	settle();
	close_all();
	struct stat sb;
	CU_ASSERT_FATAL(stat(PATH_, &sb) == 0);
	FILE *f = fopen(PATH_, "r+b");
	fseek(f, sb.st_size / 2, SEEK_SET);
	char junk[4096];
	memset(junk, 0xA5, sizeof junk);
	fwrite(junk, 1, sizeof junk, f);
	fclose(f);
	expect_refused("is damaged");
	/* midge_persist_damaged move: moved aside, a new store */
	char err[2048];
	struct store_config cfg = config();
	cfg.move_damaged = true;
	bool retry = false;
	struct engine_config ec;
	engine_config_default(&ec);
	E = engine_new(&ec, &IO, NULL);
	CU_ASSERT_PTR_NULL(store_open(&cfg, E, on_notify, NULL, NOW, &retry, err, sizeof err));
	CU_ASSERT(retry);
	CU_ASSERT(strstr(err, "moved to") != NULL);
	engine_free(E);
	open_ok();
	close_all();
	char moved[400];
	snprintf(moved, sizeof moved, "%s.damaged-%llu", PATH_, (unsigned long long)(NOW / 1000));
	CU_ASSERT_EQUAL(access(moved, F_OK), 0);
	unlink(moved);
	/* a second broker on the same file */
	open_ok();
	struct engine *first = E;
	struct store *fs = S;
	expect_refused("in use by another midge");
	E = first;
	S = fs;
	close_all();
	cleanup_dir();
}

static const struct test_case store_cases[] = {
	{"store: everything comes back, after a close or a crash", t_store_roundtrip},
	{"store: sessions and retained messages keep their owners", t_store_owners},
	{"store: acknowledged before the commit, never written", t_store_cancel},
	{"store: a failing disk holds acknowledgements, then resumes", t_store_fault},
	{"store: periodic mode does not hold acknowledgements", t_store_periodic},
	{"store: checkpoints beside the commits, nothing lost", t_store_checkpoints},
	{"store: damaged, foreign, newer, locked files refused", t_store_refuses},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"store", store_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
