/*
 * broker.h - what main.c needs from broker.c beyond include/midge.h.
 */
#ifndef MIDGE_TRANSPORT_BROKER_H
#define MIDGE_TRANSPORT_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "midge.h"

/* -v: every log type, to stderr as well. */
void broker_set_verbose(struct midge *m, bool on);
/* The port of a bound listener (0 if none): for port 0 listeners. */
uint16_t broker_first_port(const struct midge *m);

#endif
