/*
 * fuzz_store.c - the store's recovery path (store/recover.c and the
 * engine's restore calls) with damaged databases. The first byte picks how
 * the rest becomes a database:
 *
 *   even  an SQLite image, opened in memory (sqlite3_deserialize): damage
 *         at the page level, as a bad disk or a torn copy would leave it
 *   odd   rows: midge's schema is created, then the input is a script of
 *         INSERT OR REPLACE into its tables, each value chosen by a byte
 *         (small integers that make rows refer to each other, large ones,
 *         topics and filters from a list, raw bytes, NULL, text, reals):
 *         damage at the record level, valid SQLite with invalid content
 *
 * Then the database is checked and recovered into an engine (two replay
 * logs configured) exactly as at start-up, and every session is expired,
 * which releases every message reference recovery counted.
 *
 * Seeds: fuzz/store_seeds.py writes the row scripts; an image seed is a
 * row script's database, written by the harness itself when
 * MIDGE_FUZZ_STORE_IMAGE names a file.
 *
 * Must hold: no crash, no leak (LeakSanitizer), recovery either refuses
 * the database or succeeds, and after a successful one every release
 * matches a counted reference (store_fuzz_recover's ref_errors is 0).
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "store/internal.h"
#include "store/store.h"

static int fz_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		   struct frame *tail, bool droppable)
{
	return 0;
}

static void fz_close(void *ctx, void *handle)
{
}

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t rd_u8(struct rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static const char *const fz_words[] = {
	"a/b", "a/#", "a/+/c", "h/1", "h/#", "z", "$SYS/x", "+", "#", "", "$share/g/a/#",
	"s", "p", "w", "a\0b", "\xff\xfe", "x/y/z/w/v/u/t",
};

/* Binds parameter i from the script: the kind is chosen by one byte. */
static void fz_bind(sqlite3_stmt *s, int i, struct rd *r)
{
	uint8_t k = rd_u8(r);
	switch (k & 7) {
	case 0:
	case 1:
	case 2:
		sqlite3_bind_int64(s, i, k >> 3); /* 0..31: rows refer to each other */
		break;
	case 3: {
		uint64_t v = 0;
		for (int j = 0; j < 8; j++)
			v = (v << 8) | rd_u8(r);
		sqlite3_bind_int64(s, i, (int64_t)v);
		break;
	}
	case 4: {
		const char *w = fz_words[(k >> 3) % (sizeof fz_words / sizeof fz_words[0])];
		sqlite3_bind_blob(s, i, w, (int)strlen(w), SQLITE_TRANSIENT);
		break;
	}
	case 5: {
		size_t len = rd_u8(r);
		if (len > r->n)
			len = r->n;
		sqlite3_bind_blob(s, i, r->p, (int)len, SQLITE_TRANSIENT);
		r->p += len;
		r->n -= len;
		break;
	}
	case 6:
		sqlite3_bind_null(s, i);
		break;
	default:
		if (k & 8)
			sqlite3_bind_text(s, i, "12", 2, SQLITE_STATIC);
		else
			sqlite3_bind_double(s, i, 1.5);
		break;
	}
}

/* The schema, then rows as the script says. */
static void fz_rows(sqlite3 *h, struct rd *r)
{
	static const struct {
		const char *table;
		int cols;
	} tables[] = {
		{"sessions", 7}, {"subscriptions", 4}, {"messages", 10}, {"queue", 6},
		{"inflight", 8}, {"incoming_qos2", 2}, {"wills", 7}, {"retained", 2},
		{"history", 4},
	};
	char err[256];
	/* small pages: an image made from these rows is a small seed */
	sqlite3_exec(h, "PRAGMA page_size=512", NULL, NULL, NULL);
	if (db_create(h, err, sizeof err) < 0)
		return;
	sqlite3_exec(h, "BEGIN", NULL, NULL, NULL);
	for (int ops = 0; r->n && ops < 64; ops++) {
		unsigned t = rd_u8(r) % (sizeof tables / sizeof tables[0]);
		char sql[160];
		int k = snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s VALUES(", tables[t].table);
		for (int c = 0; c < tables[t].cols; c++)
			k += snprintf(sql + k, sizeof sql - (size_t)k, c ? ",?" : "?");
		snprintf(sql + k, sizeof sql - (size_t)k, ")");
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
			continue;
		for (int c = 1; c <= tables[t].cols; c++)
			fz_bind(s, c, r);
		sqlite3_step(s); /* a constraint may refuse the row: fine */
		sqlite3_finalize(s);
	}
	sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const struct engine_io io = {NULL, fz_send, fz_close, NULL, NULL, NULL};
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_queued_messages = 16; /* the queue bound also meets recovery */
	struct engine *e = engine_new(&cfg, &io, NULL);
	if (!e)
		return 0;
	engine_history_add(e, "h/#", 3, 0);
	engine_history_add(e, "z", 2, 60);
	sqlite3 *h = NULL;
	if (sqlite3_open(":memory:", &h) != SQLITE_OK) {
		sqlite3_close(h);
		engine_free(e);
		return 0;
	}
	sqlite3_exec(h, "PRAGMA cell_size_check=ON", NULL, NULL, NULL);
	struct rd r = {data + 1, size - 1};
	if (data[0] & 1) {
		fz_rows(h, &r);
	} else if (size > 1) {
		unsigned char *img = sqlite3_malloc64(size - 1);
		if (!img)
			goto out;
		memcpy(img, data + 1, size - 1);
		if (sqlite3_deserialize(h, "main", img, (sqlite3_int64)(size - 1),
					(sqlite3_int64)(size - 1),
					SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) !=
		    SQLITE_OK)
			goto out;
	}
	/* MIDGE_FUZZ_STORE_IMAGE=PATH: the database as built, for image seeds */
	const char *dump = getenv("MIDGE_FUZZ_STORE_IMAGE");
	if (dump) {
		sqlite3_int64 n = 0;
		unsigned char *img = sqlite3_serialize(h, "main", &n, 0);
		FILE *f = img ? fopen(dump, "wb") : NULL;
		if (f) {
			fputc(0, f); /* the image mode */
			fwrite(img, 1, (size_t)n, f);
			fclose(f);
		}
		sqlite3_free(img);
	}
	char err[512];
	uint64_t bad = 0;
	int rc = store_fuzz_recover(h, e, 1700000000000ull, &bad, err, sizeof err);
	if (getenv("MIDGE_FUZZ_STORE_VERBOSE")) { /* what a seed exercises */
		struct engine_stats st;
		engine_stats(e, &st);
		fprintf(stderr, "%s: %s (retained %llu, logged %llu)\n", rc ? "refused" : "recovered",
			rc ? err : "ok", (unsigned long long)st.retained_count,
			(unsigned long long)st.history_count);
	}
	if (bad) {
		fprintf(stderr, "recovery miscounted message references (%llu)\n",
			(unsigned long long)bad);
		abort();
	}
out:
	sqlite3_close(h);
	engine_free(e);
	return 0;
}
