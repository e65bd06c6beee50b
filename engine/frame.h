/*
 * frame.h - immutable, reference-counted byte buffers shared between the
 * engine (which fills them) and the transport (which writes them). One
 * PUBLISH payload is one frame however many connections send it.
 * Single-threaded: the loop thread owns every reference.
 */
#ifndef MIDGE_FRAME_H
#define MIDGE_FRAME_H

#include <stdint.h>

struct frame {
	uint32_t refs;
	uint32_t len;
	uint8_t data[];
};

/* A frame of len bytes with one reference, or NULL on OOM. May come from a
 * size-class free list rather than malloc. */
struct frame *frame_new(uint32_t len);

static inline struct frame *frame_ref(struct frame *f)
{
	f->refs++;
	return f;
}

/* Drops one reference; the last one returns the frame. frame_unref(NULL)
 * does nothing. */
void frame_unref(struct frame *f);

#endif
