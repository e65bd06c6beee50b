/*
 * fuzz_passwd.c - the password_file and psk_file readers (auth/pwfile.c,
 * auth/passwd.c, auth/psk.c). The first byte picks what the rest is:
 *   0  a password file      1  a psk_file
 *   2  one hash, as the part after "user:" (checked when it is $6$,
 *      the kind cheap enough to hash per input)
 * Invariants: no crash, no leak, no read outside the input (it is
 * copied into a buffer of its exact size); a refusal names the file and
 * a line; a database never has more entries than the text has lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "auth/psk.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t fuzz_lines(const char *p, size_t n)
{
	size_t lines = 1;
	for (size_t i = 0; i < n; i++)
		lines += p[i] == '\n';
	return lines;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	size_t n = size - 1;
	char *text = malloc(n ? n : 1);
	if (!text)
		return 0;
	memcpy(text, data + 1, n);
	char err[512] = "";
	switch (data[0] % 3) {
	case 0: {
		struct passwd_db *db = passwd_parse(text, n, "fuzz", err, sizeof(err));
		if (db) {
			FUZZ_CHECK(passwd_count(db) <= fuzz_lines(text, n));
			passwd_unref(db);
		} else {
			FUZZ_CHECK(strncmp(err, "fuzz", 4) == 0);
		}
		break;
	}
	case 1: {
		struct psk_db *db = psk_parse(text, n, "fuzz", err, sizeof(err));
		if (db) {
			uint8_t key[PSK_MAX_KEY];
			FUZZ_CHECK(psk_count(db) <= fuzz_lines(text, n));
			long k = psk_lookup(db, text, n < 8 ? n : 8, key);
			FUZZ_CHECK(k <= PSK_MAX_KEY);
			psk_unref(db);
		} else {
			FUZZ_CHECK(strncmp(err, "fuzz", 4) == 0);
		}
		break;
	}
	default: {
		bool ok = passwd_is_hash(text, n);
		if (ok && n >= 3 && memcmp(text, "$6$", 3) == 0 && !memchr(text, '\n', n)) {
			char *line = malloc(n + 3);
			if (!line)
				break;
			memcpy(line, "u:", 2);
			memcpy(line + 2, text, n);
			struct passwd_db *db = passwd_parse(line, n + 2, "fuzz", err, sizeof(err));
			FUZZ_CHECK(db != NULL);
			FUZZ_CHECK(passwd_count(db) == 1);
			/* a random hash is matched by no password */
			FUZZ_CHECK(passwd_check(db, "u", 1, "fuzz", 4) == -1 ||
				   passwd_is_hash(text, n));
			FUZZ_CHECK(passwd_check(db, "v", 1, "fuzz", 4) == -1);
			passwd_unref(db);
			free(line);
		}
		break;
	}
	}
	free(text);
	return 0;
}
