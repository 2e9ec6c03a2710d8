/*
 * Copyright (C) Data Loom
 */


#ifndef _LOOMGEN_SHA1_H_INCLUDED_
#define _LOOMGEN_SHA1_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


#define LG_WS_GUID           "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


/* SHA-1 (FIPS 180-4) of a short message: len at most 119 bytes */
void lg_sha1(const u_char *data, size_t len, u_char out[20]);

/* base64 of len bytes into dst (4 * ceil(len / 3) + 1 bytes), 0-ended */
size_t lg_base64(const u_char *src, size_t len, char *dst);


#endif /* _LOOMGEN_SHA1_H_INCLUDED_ */
