/*
 * passwd.h - Mosquitto password files: "username:hash" lines (the
 * pwfile.h format), hash being one of
 *
 *   $argon2id$v=19$m=KiB,t=passes,p=lanes$salt$hash   Mosquitto 2.1 (libargon2)
 *   $7$iterations$salt$hash                         Mosquitto 2.0 (PBKDF2-HMAC-SHA512)
 *   $6$salt$hash                                    Mosquitto 1.x (SHA-512 of password + salt)
 *
 * argon2id salt and hash in unpadded base64 (the PHC string format), the
 * others in padded base64. A database is read-only once loaded, so any
 * thread may check passwords against it and hold a reference.
 */
#ifndef MIDGE_AUTH_PASSWD_H
#define MIDGE_AUTH_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

/* What Mosquitto 2.1's mosquitto_passwd writes, and so midge passwd. */
#define PASSWD_ARGON2_T 1
#define PASSWD_ARGON2_M_KIB 47104
#define PASSWD_ARGON2_P 1
#define PASSWD_SALT_LEN 64
#define PASSWD_HASH_LEN 64
/* $7$ and $6$ get 12-byte salts, the only size Mosquitto 2.0 reads (2.1
 * reads 12 or 64): those formats are chosen to share a file with it. */
#define PASSWD_SHA512_SALT_LEN 12
/* mosquitto_passwd 2.1's -H sha512-pbkdf2 iterations (2.0 wrote 101). */
#define PASSWD_PBKDF2_ITERATIONS 210000

/* Bounds on what a file may ask of a check: a hash past them is refused
 * when the file is read (argon2id: per-check memory, passes and lanes;
 * PBKDF2: iterations). */
#define PASSWD_MAX_ARGON2_M_KIB (1024u * 1024u) /* 1 GiB */
#define PASSWD_MAX_ARGON2_T 64u
#define PASSWD_MAX_ARGON2_P 64u
#define PASSWD_MAX_PBKDF2_ITERATIONS 10000000u
#define PASSWD_MAX_SALT 256u
#define PASSWD_MAX_ARGON2_HASH 256u

enum passwd_kind {
	PASSWD_SHA512 = 6,
	PASSWD_PBKDF2_SHA512 = 7,
	PASSWD_ARGON2ID = 100,
};

struct passwd_db;

/* Reads and parses a password file (refcount 1). NULL with
 * "path:line: why" in err. */
struct passwd_db *passwd_load(const char *path, char *err, size_t errlen);
/* The same from memory; file names it in messages. */
struct passwd_db *passwd_parse(const char *text, size_t len, const char *file, char *err,
			       size_t errlen);
struct passwd_db *passwd_ref(struct passwd_db *db);
/* Frees db with its last reference; passwd_unref(NULL) does nothing. */
void passwd_unref(struct passwd_db *db);
size_t passwd_count(const struct passwd_db *db);

/*
 * 0 when user is in db and password matches its hash, else -1. A user
 * who is not in the file is checked against a dummy entry with the
 * parameters most entries of the file have, so an unknown user costs
 * what a known one does; the final comparison is constant-time. Safe
 * from any thread. password may hold any bytes (MQTT passwords are
 * binary).
 */
int passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
		 const char *password, size_t password_len);

/* Whether user is in db (the chain's passwd source defers for one who is
 * not, when a later source has something to check). Any thread. */
bool passwd_has_user(const struct passwd_db *db, const char *user, size_t user_len);

/*
 * Hashes password into the file format: kind PASSWD_ARGON2ID (Mosquitto
 * 2.1's parameters), PASSWD_PBKDF2_SHA512 (iterations, 0 for the
 * default) or PASSWD_SHA512, with a fresh random salt. Writes the
 * NUL-terminated hash into out. Returns 0, or -1 (out too small, no
 * randomness, or a library failure).
 */
int passwd_hash(enum passwd_kind kind, unsigned iterations, const char *password,
		size_t password_len, char *out, size_t outlen);

/* Whether hash[0..len) is a hash midge can check (as in a file). */
bool passwd_is_hash(const char *hash, size_t len);

#endif
