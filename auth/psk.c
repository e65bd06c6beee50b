/*
 * psk.c - psk_file: identities and their keys for TLS-PSK, as Mosquitto
 * reads them (hex keys; an identity twice is an error here).
 */
#include "auth/psk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/pwfile.h"

struct psk_entry {
	char *identity; /* identity, then the key, in one allocation */
	uint8_t *key;
	uint32_t identity_len, key_len;
};

struct psk_db {
	unsigned refs;
	struct psk_entry *e;
	size_t n, cap;
	struct pwfile_index index; /* by identity */
};

static const char *psk_name_of(const void *ctx, size_t i, size_t *len)
{
	const struct psk_db *db = ctx;
	*len = db->e[i].identity_len;
	return db->e[i].identity;
}

static int psk_hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int psk_add(void *ctx, const char *name, size_t name_len, const char *secret,
		   size_t secret_len, char *err, size_t errlen)
{
	struct psk_db *db = ctx;
	char shown[300];
	pwfile_printable(name, name_len, shown, sizeof(shown));
	if (secret_len % 2 || secret_len / 2 > PSK_MAX_KEY) {
		snprintf(err, errlen, "key of '%s' must be an even number of hex digits (at most %u)",
			 shown, 2 * PSK_MAX_KEY);
		return -1;
	}
	if (db->n == db->cap) {
		size_t ncap = db->cap ? db->cap * 2 : 8;
		struct psk_entry *ne = realloc(db->e, ncap * sizeof(*ne));
		if (!ne)
			goto oom;
		db->e = ne;
		db->cap = ncap;
	}
	struct psk_entry *e = &db->e[db->n];
	e->identity = malloc(name_len + secret_len / 2 + 1);
	if (!e->identity)
		goto oom;
	memcpy(e->identity, name, name_len);
	e->identity[name_len] = '\0';
	e->identity_len = (uint32_t)name_len;
	e->key = (uint8_t *)e->identity + name_len + 1;
	e->key_len = (uint32_t)(secret_len / 2);
	for (size_t i = 0; i < e->key_len; i++) {
		int hi = psk_hex((unsigned char)secret[2 * i]), lo = psk_hex((unsigned char)secret[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			pwfile_wipe(e->identity, name_len + 1 + e->key_len);
			free(e->identity);
			snprintf(err, errlen, "key of '%s' is not hexadecimal", shown);
			return -1;
		}
		e->key[i] = (uint8_t)(hi << 4 | lo);
	}
	db->n++;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

struct psk_db *psk_parse(const char *text, size_t len, const char *file, char *err,
			 size_t errlen)
{
	struct psk_db *db = calloc(1, sizeof(*db));
	if (!db) {
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	db->refs = 1;
	size_t dup = 0;
	if (pwfile_parse(text, len, file, psk_add, db, err, errlen) < 0)
		goto fail;
	int rc = pwfile_index_build(&db->index, db->n, psk_name_of, db, &dup);
	if (rc == -2) {
		char shown[300];
		snprintf(err, errlen, "%s: identity '%s' appears twice", file,
			 pwfile_printable(db->e[dup].identity, db->e[dup].identity_len, shown,
					  sizeof(shown)));
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: out of memory", file);
		goto fail;
	}
	return db;
fail:
	psk_unref(db);
	return NULL;
}

static void *psk_parse_any(const char *text, size_t len, const char *file, char *err,
			      size_t errlen)
{
	return psk_parse(text, len, file, err, errlen);
}

struct psk_db *psk_load(const char *path, char *err, size_t errlen)
{
	return pwfile_load("psk_file", path, psk_parse_any, err, errlen);
}

struct psk_db *psk_ref(struct psk_db *db)
{
	db->refs++;
	return db;
}

void psk_unref(struct psk_db *db)
{
	if (!db || --db->refs > 0)
		return;
	for (size_t i = 0; i < db->n; i++) {
		pwfile_wipe(db->e[i].identity, db->e[i].identity_len + 1 + db->e[i].key_len);
		free(db->e[i].identity);
	}
	free(db->e);
	pwfile_index_free(&db->index);
	free(db);
}

size_t psk_count(const struct psk_db *db)
{
	return db ? db->n : 0;
}

long psk_lookup(const struct psk_db *db, const char *identity, size_t len, uint8_t *key)
{
	long i = db ? pwfile_index_find(&db->index, identity, len, psk_name_of, db) : -1;
	if (i < 0)
		return -1;
	memcpy(key, db->e[i].key, db->e[i].key_len);
	return db->e[i].key_len;
}
