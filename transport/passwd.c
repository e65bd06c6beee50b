/*
 * passwd.c - checks passwords against a Mosquitto password file, with
 * GnuTLS's hash and PBKDF2.
 */
#include "transport/passwd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

struct passwd_entry {
	char *user;
	int kind; /* 6 or 7 */
	unsigned iterations;
	gnutls_datum_t salt;
	gnutls_datum_t hash;
};

struct passwd_db {
	struct passwd_entry *e;
	size_t n;
};

static void passwd_entry_clear(struct passwd_entry *e)
{
	free(e->user);
	gnutls_free(e->salt.data);
	gnutls_free(e->hash.data);
	memset(e, 0, sizeof(*e));
}

void passwd_free(struct passwd_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->n; i++)
		passwd_entry_clear(&db->e[i]);
	free(db->e);
	free(db);
}

static int passwd_b64(const char *s, size_t len, gnutls_datum_t *out)
{
	gnutls_datum_t in = {(unsigned char *)s, (unsigned)len};
	return gnutls_base64_decode2(&in, out) < 0 ? -1 : 0;
}

/* Parses "$6$salt$hash" or "$7$iter$salt$hash". */
static int passwd_parse_hash(char *h, struct passwd_entry *e)
{
	char *salt, *hash, *end;
	if (strncmp(h, "$6$", 3) == 0) {
		e->kind = 6;
		salt = h + 3;
	} else if (strncmp(h, "$7$", 3) == 0) {
		e->kind = 7;
		unsigned long it = strtoul(h + 3, &end, 10);
		if (end == h + 3 || *end != '$' || it == 0 || it > 10000000)
			return -1;
		e->iterations = (unsigned)it;
		salt = end + 1;
	} else {
		return -1;
	}
	hash = strchr(salt, '$');
	if (!hash)
		return -1;
	if (passwd_b64(salt, (size_t)(hash - salt), &e->salt) < 0 ||
	    passwd_b64(hash + 1, strlen(hash + 1), &e->hash) < 0 || e->hash.size != 64)
		return -1;
	return 0;
}

struct passwd_db *passwd_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	struct passwd_db *db = calloc(1, sizeof(*db));
	char line[1024];
	int lineno = 0;
	if (!f || !db) {
		snprintf(err, errlen, "password_file %s: cannot open", path);
		goto fail;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strcspn(line, "\r\n");
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (!colon) {
			snprintf(err, errlen, "%s:%d: expected username:hash", path, lineno);
			goto fail;
		}
		*colon = '\0';
		struct passwd_entry *ne = realloc(db->e, (db->n + 1) * sizeof(*ne));
		if (!ne)
			goto fail;
		db->e = ne;
		struct passwd_entry *e = &db->e[db->n];
		memset(e, 0, sizeof(*e));
		e->user = strdup(line);
		db->n++;
		if (!e->user || passwd_parse_hash(colon + 1, e) < 0) {
			snprintf(err, errlen,
				 "%s:%d: password of '%s' is not a mosquitto_passwd hash ($6$ or $7$); "
				 "plain-text passwords are not accepted",
				 path, lineno, line);
			goto fail;
		}
	}
	fclose(f);
	return db;
fail:
	if (f)
		fclose(f);
	passwd_free(db);
	return NULL;
}

int passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
		 const char *password, size_t password_len)
{
	uint8_t out[64];
	const struct passwd_entry *e = NULL;
	for (size_t i = 0; db && i < db->n; i++)
		if (strlen(db->e[i].user) == user_len && memcmp(db->e[i].user, user, user_len) == 0)
			e = &db->e[i];
	if (!e || !password)
		return -1;
	if (e->kind == 7) {
		gnutls_datum_t key = {(unsigned char *)password, (unsigned)password_len};
		if (gnutls_pbkdf2(GNUTLS_MAC_SHA512, &key, &e->salt, e->iterations, out, sizeof(out)) < 0)
			return -1;
	} else {
		size_t n = password_len + e->salt.size;
		uint8_t *buf = malloc(n ? n : 1);
		if (!buf)
			return -1;
		memcpy(buf, password, password_len);
		memcpy(buf + password_len, e->salt.data, e->salt.size);
		int rc = gnutls_hash_fast(GNUTLS_DIG_SHA512, buf, n, out);
		free(buf);
		if (rc < 0)
			return -1;
	}
	/* Constant time: the comparison does not reveal where it differs. */
	uint8_t diff = 0;
	for (size_t i = 0; i < sizeof(out); i++)
		diff |= out[i] ^ e->hash.data[i];
	return diff == 0 ? 0 : -1;
}
