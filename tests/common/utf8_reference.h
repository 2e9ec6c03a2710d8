/*
 * Copyright (C) Data Loom
 */


#ifndef _LOOM_UTF8_REFERENCE_H_INCLUDED_
#define _LOOM_UTF8_REFERENCE_H_INCLUDED_


/*
 * A plain UTF-8 decoder (RFC 3629) that the unit tests and the fuzz target
 * compare the incremental validator with: written the obvious way, code
 * point by code point, on purpose unlike the code it checks.
 */

static int
utf8_reference_valid(const u_char *p, size_t n)
{
    size_t    i, k, need;
    uint32_t  cp, min;

    for (i = 0; i < n; i += need + 1) {

        if (p[i] < 0x80) {
            need = 0;
            continue;
        }

        if ((p[i] & 0xe0) == 0xc0) {
            need = 1;
            cp = p[i] & 0x1f;
            min = 0x80;

        } else if ((p[i] & 0xf0) == 0xe0) {
            need = 2;
            cp = p[i] & 0x0f;
            min = 0x800;

        } else if ((p[i] & 0xf8) == 0xf0) {
            need = 3;
            cp = p[i] & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        for (k = 1; k <= need; k++) {
            if (i + k >= n || (p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


#endif /* _LOOM_UTF8_REFERENCE_H_INCLUDED_ */
