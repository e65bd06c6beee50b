/*
 * passwd_tool.h - `midge passwd`: mosquitto_passwd's command line over
 * auth/passwd.c. Writes argon2id (Mosquitto 2.1's default) unless -H
 * says otherwise.
 */
#ifndef MIDGE_AUTH_PASSWD_TOOL_H
#define MIDGE_AUTH_PASSWD_TOOL_H

/* argv[0] is "passwd" (or the program's name). Returns the exit status. */
int passwd_tool_main(int argc, char **argv);

#endif
