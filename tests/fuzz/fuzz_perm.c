/*
 * Copyright (C) Data Loom
 */


/*
 * libFuzzer target for topic patterns: the input holds a pattern, a
 * topic, a ClientId and a subject separated by NUL bytes.  The compiler
 * must accept exactly the patterns a plain reference accepts, and the
 * matcher must agree with the reference's dynamic-programming match.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_perm.h"


#define REF_MAX    256
#define REF_VALUE  40         /* so a segment expands to REF_ITEMS at most */
#define REF_ITEMS  (REF_MAX / 5 * REF_VALUE + REF_MAX)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/* one segment of a pattern as items: -1 is '*', else a byte */

typedef struct {
    int     item[REF_ITEMS];
    size_t  n;
    int     any;                  /* the segment is "**" */
    int     bad;                  /* holds an unusable placeholder value */
} ref_seg_t;


static int
ref_value_ok(ngx_str_t *v)
{
    size_t  i;

    if (v->len == 0) {
        return 0;
    }

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < 0x20 || v->data[i] == 0x7f
            || strchr("*{}\\/", v->data[i]) != NULL)
        {
            return 0;
        }
    }

    return 1;
}


/* 1: parsed, 0: refused */

static int
ref_seg(const u_char *p, size_t len, ref_seg_t *seg, ngx_str_t *client,
    ngx_str_t *sub)
{
    size_t      i, k, nl;
    ngx_str_t  *v;

    seg->n = 0;
    seg->any = 0;
    seg->bad = 0;

    if (len == 2 && p[0] == '*' && p[1] == '*') {
        seg->any = 1;
        return 1;
    }

    for (i = 0; i < len; i++) {
        if (p[i] == '\\') {
            if (i + 1 == len || strchr("*{}\\", p[i + 1]) == NULL
                || p[i + 1] == '\0')
            {
                return 0;
            }

            seg->item[seg->n++] = p[++i];

        } else if (p[i] == '*') {
            if (i + 1 < len && p[i + 1] == '*') {
                return 0;
            }

            seg->item[seg->n++] = -1;

        } else if (p[i] == '}') {
            return 0;

        } else if (p[i] == '{') {
            for (k = i + 1; k < len && p[k] != '}'; k++) {
                /* void */
            }

            if (k == len) {
                return 0;
            }

            nl = k - i - 1;

            if (nl == 6 && memcmp(p + i + 1, "client", 6) == 0) {
                v = client;

            } else if (nl == 3 && memcmp(p + i + 1, "sub", 3) == 0) {
                v = sub;

            } else {
                return 0;
            }

            if (!ref_value_ok(v)) {
                seg->bad = 1;

            } else {
                for (nl = 0; nl < v->len; nl++) {
                    seg->item[seg->n++] = v->data[nl];
                }
            }

            i = k;

        } else {
            seg->item[seg->n++] = p[i];
        }
    }

    return 1;
}


static int
ref_glob(ref_seg_t *seg, const u_char *t, size_t tl)
{
    size_t       i, j;
    static char  dp[REF_ITEMS + 1][REF_MAX + 1];

    /* every other cell is written before it is read */
    memset(dp[0], 0, tl + 1);
    dp[0][0] = 1;

    for (i = 1; i <= seg->n; i++) {
        for (j = 0; j <= tl; j++) {
            if (seg->item[i - 1] == -1) {
                dp[i][j] = dp[i - 1][j] || (j > 0 && dp[i][j - 1]);

            } else {
                dp[i][j] = j > 0 && dp[i - 1][j - 1]
                           && t[j - 1] == seg->item[i - 1];
            }
        }
    }

    return dp[seg->n][tl];
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                         ok, want, got, bad;
    size_t                      i, np, nt, plen;
    ngx_str_t                   part[4], pattern, *list;
    const u_char               *p, *last, *s, *tseg[REF_MAX + 1];
    size_t                      tlen[REF_MAX + 1];
    ngx_uint_t                  op;
    ngx_http_loom_perm_t       *perm;
    ngx_http_loom_perm_vars_t   vars;
    ngx_http_loom_perm_list_t   lists[NGX_HTTP_LOOM_PERM_NOPS];
    char                        err[NGX_HTTP_LOOM_PERM_ERRLEN];
    static ref_seg_t            pseg[REF_MAX + 1];
    static char                 dp[REF_MAX + 2][REF_MAX + 2];

    if (size > 4 * REF_MAX) {
        return 0;
    }

    /* pattern \0 topic \0 client \0 sub */

    p = data;
    last = data + size;

    for (i = 0; i < 4; i++) {
        s = p;
        while (p < last && *p != '\0') {
            p++;
        }

        part[i].data = (u_char *) s;
        part[i].len = p - s;

        if (p < last) {
            p++;
        }
    }

    pattern = part[0];
    vars.client = part[2];
    vars.sub = part[3];

    if (pattern.len > REF_MAX || part[1].len > REF_MAX
        || vars.client.len > REF_VALUE || vars.sub.len > REF_VALUE)
    {
        return 0;
    }

    /* the reference: segments split at every '/' */

    ok = pattern.len > 0;
    np = 0;
    bad = 0;
    s = pattern.data;

    for (i = 0; ok && i <= pattern.len; i++) {
        if (i == pattern.len || pattern.data[i] == '/') {
            plen = pattern.data + i - s;
            ok = ref_seg(s, plen, &pseg[np], &vars.client, &vars.sub);
            bad |= pseg[np].bad;
            np++;
            s = pattern.data + i + 1;
        }
    }

    list = &pattern;
    memset(lists, 0, sizeof(lists));
    lists[NGX_HTTP_LOOM_PERM_SUBSCRIBE].patterns = list;
    lists[NGX_HTTP_LOOM_PERM_SUBSCRIBE].n = 1;

    perm = ngx_http_loom_perm_compile(lists, err, sizeof(err));

    if ((perm != NULL) != ok) {
        abort();
    }

    if (perm == NULL) {
        return 0;
    }

    nt = 0;
    s = part[1].data;

    for (i = 0; i <= part[1].len; i++) {
        if (i == part[1].len || part[1].data[i] == '/') {
            tseg[nt] = s;
            tlen[nt] = part[1].data + i - s;
            nt++;
            s = part[1].data + i + 1;
        }
    }

    /* dp[i][j]: pattern segments from i match topic segments from j */

    memset(dp, 0, sizeof(dp));
    dp[np][nt] = 1;

    for (i = np; i-- > 0; ) {
        size_t  j, k;

        for (j = nt + 1; j-- > 0; ) {
            if (pseg[i].any) {
                for (k = j; k <= nt && !dp[i][j]; k++) {
                    dp[i][j] = dp[i + 1][k];
                }

            } else {
                dp[i][j] = j < nt && dp[i + 1][j + 1]
                           && ref_glob(&pseg[i], tseg[j], tlen[j]);
            }
        }
    }

    want = !bad && dp[0][0];

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {
        got = ngx_http_loom_perm_check(perm, op, &part[1], &vars) == NGX_OK;

        if (got != (op == NGX_HTTP_LOOM_PERM_SUBSCRIBE ? want : 0)) {
            abort();
        }
    }

    if ((ngx_http_loom_perm_visible(perm, &part[1], &vars) == NGX_OK)
        != want)
    {
        abort();
    }

    ngx_http_loom_perm_free(perm);

    return 0;
}
