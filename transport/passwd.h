/*
 * passwd.h - Mosquitto password files: "username:hash" lines where hash is
 * $6$salt$sha512 (mosquitto_passwd before 2.0) or $7$iterations$salt$hash
 * (PBKDF2-HMAC-SHA512, Mosquitto 2), salts and hashes in base64.
 */
#ifndef MIDGE_TRANSPORT_PASSWD_H
#define MIDGE_TRANSPORT_PASSWD_H

#include <stddef.h>

struct passwd_db;

/* Reads the file. NULL with "path:line: why" in err. */
struct passwd_db *passwd_load(const char *path, char *err, size_t errlen);
void passwd_free(struct passwd_db *db);

/* 0 when user exists and password matches its hash, else -1. */
int passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
		 const char *password, size_t password_len);

#endif
