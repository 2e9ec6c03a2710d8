/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_perm.h"


#define NGX_HTTP_LOOM_PART_LIT     0
#define NGX_HTTP_LOOM_PART_STAR    1
#define NGX_HTTP_LOOM_PART_CLIENT  2
#define NGX_HTTP_LOOM_PART_SUB     3


typedef struct {
    ngx_uint_t                  kind;
    u_char                     *data;        /* LIT: unescaped */
    size_t                      len;
} ngx_http_loom_part_t;


typedef struct {
    ngx_http_loom_part_t       *parts;
    ngx_uint_t                  nparts;
    unsigned                    any:1;       /* the segment is "**" */
    unsigned                    star:1;      /* holds a '*' part */
} ngx_http_loom_seg_t;


typedef struct {
    ngx_http_loom_seg_t        *segs;
    ngx_uint_t                  nsegs;
    unsigned                    client:1;    /* uses {client} */
    unsigned                    sub:1;       /* uses {sub} */
} ngx_http_loom_pattern_t;


struct ngx_http_loom_perm_s {
    ngx_uint_t                  everything;
    ngx_http_loom_pattern_t    *lists[NGX_HTTP_LOOM_PERM_NOPS];
    ngx_uint_t                  n[NGX_HTTP_LOOM_PERM_NOPS];
};


/*
 * Compiling runs twice over the same text: once to count (fill is 0),
 * once to write into the block sized by the count.
 */

typedef struct {
    ngx_uint_t                  fill;
    ngx_uint_t                  npatterns;
    ngx_uint_t                  nsegs;
    ngx_uint_t                  nparts;
    size_t                      ntext;

    ngx_http_loom_pattern_t    *patterns;
    ngx_http_loom_seg_t        *segs;
    ngx_http_loom_part_t       *parts;
    u_char                     *text;
} ngx_http_loom_compile_t;


static const char *ngx_http_loom_perm_parse(ngx_http_loom_compile_t *c,
    u_char *p, size_t len);
static ngx_int_t ngx_http_loom_perm_match(ngx_http_loom_pattern_t *pat,
    u_char *topic, size_t len, ngx_str_t *val);
static ngx_int_t ngx_http_loom_perm_seg_match(ngx_http_loom_seg_t *seg,
    u_char *s, size_t len, ngx_str_t *val);
static ngx_int_t ngx_http_loom_perm_chunk(ngx_http_loom_part_t *part,
    ngx_uint_t n, u_char *s, size_t len, ngx_str_t *val);
static size_t ngx_http_loom_perm_chunk_len(ngx_http_loom_part_t *part,
    ngx_uint_t n, ngx_str_t *val);


static const char  *ngx_http_loom_perm_names[] = {
    "publish", "subscribe", "admin"
};

static ngx_http_loom_perm_t  ngx_http_loom_perm_all = { 1, { NULL }, { 0 } };


ngx_http_loom_perm_t *
ngx_http_loom_perm_compile(ngx_http_loom_perm_list_t *lists, char *err,
    size_t errlen)
{
    u_char                   *block;
    size_t                    size;
    ngx_uint_t                op, i;
    const char               *e;
    ngx_http_loom_perm_t     *perm;
    ngx_http_loom_compile_t   c;

    ngx_memzero(&c, sizeof(ngx_http_loom_compile_t));

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {

        if (lists[op].n > NGX_HTTP_LOOM_PERM_MAX_LIST) {
            snprintf(err, errlen, "%s: more than %d patterns",
                     ngx_http_loom_perm_names[op],
                     NGX_HTTP_LOOM_PERM_MAX_LIST);
            return NULL;
        }

        for (i = 0; i < lists[op].n; i++) {
            e = ngx_http_loom_perm_parse(&c, lists[op].patterns[i].data,
                                         lists[op].patterns[i].len);
            if (e) {
                snprintf(err, errlen, "%s[%lu]: %s",
                         ngx_http_loom_perm_names[op],
                         (unsigned long) i + 1, e);
                return NULL;
            }
        }
    }

    size = sizeof(ngx_http_loom_perm_t)
           + c.npatterns * sizeof(ngx_http_loom_pattern_t)
           + c.nsegs * sizeof(ngx_http_loom_seg_t)
           + c.nparts * sizeof(ngx_http_loom_part_t)
           + c.ntext;

    block = malloc(size);
    if (block == NULL) {
        snprintf(err, errlen, "no memory");
        return NULL;
    }

    perm = (ngx_http_loom_perm_t *) block;
    perm->everything = 0;

    c.patterns = (ngx_http_loom_pattern_t *) (perm + 1);
    c.segs = (ngx_http_loom_seg_t *) (c.patterns + c.npatterns);
    c.parts = (ngx_http_loom_part_t *) (c.segs + c.nsegs);
    c.text = (u_char *) (c.parts + c.nparts);
    c.fill = 1;
    c.npatterns = 0;
    c.nsegs = 0;
    c.nparts = 0;
    c.ntext = 0;

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {
        perm->lists[op] = c.patterns + c.npatterns;
        perm->n[op] = lists[op].n;

        for (i = 0; i < lists[op].n; i++) {
            (void) ngx_http_loom_perm_parse(&c, lists[op].patterns[i].data,
                                            lists[op].patterns[i].len);
        }
    }

    return perm;
}


ngx_http_loom_perm_t *
ngx_http_loom_perm_from_json(json_t *publish, json_t *subscribe,
    json_t *admin, char *err, size_t errlen)
{
    size_t                      n;
    json_t                     *a[NGX_HTTP_LOOM_PERM_NOPS], *v;
    ngx_str_t                  *s;
    ngx_uint_t                  op, i;
    ngx_http_loom_perm_t       *perm;
    ngx_http_loom_perm_list_t   lists[NGX_HTTP_LOOM_PERM_NOPS];

    a[NGX_HTTP_LOOM_PERM_PUBLISH] = publish;
    a[NGX_HTTP_LOOM_PERM_SUBSCRIBE] = subscribe;
    a[NGX_HTTP_LOOM_PERM_ADMIN] = admin;

    n = 0;

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {
        lists[op].n = 0;

        if (a[op] == NULL) {
            continue;
        }

        if (!json_is_array(a[op])) {
            snprintf(err, errlen, "%s: not an array of strings",
                     ngx_http_loom_perm_names[op]);
            return NULL;
        }

        lists[op].n = json_array_size(a[op]);

        if (lists[op].n > NGX_HTTP_LOOM_PERM_MAX_LIST) {
            snprintf(err, errlen, "%s: more than %d patterns",
                     ngx_http_loom_perm_names[op],
                     NGX_HTTP_LOOM_PERM_MAX_LIST);
            return NULL;
        }

        n += lists[op].n;
    }

    s = malloc((n ? n : 1) * sizeof(ngx_str_t));
    if (s == NULL) {
        snprintf(err, errlen, "no memory");
        return NULL;
    }

    n = 0;

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {
        lists[op].patterns = s + n;

        for (i = 0; i < lists[op].n; i++) {
            v = json_array_get(a[op], i);

            if (!json_is_string(v)) {
                snprintf(err, errlen, "%s[%lu]: not a string",
                         ngx_http_loom_perm_names[op], (unsigned long) i + 1);
                free(s);
                return NULL;
            }

            s[n].data = (u_char *) json_string_value(v);
            s[n].len = json_string_length(v);
            n++;
        }
    }

    perm = ngx_http_loom_perm_compile(lists, err, errlen);

    free(s);

    return perm;
}


void
ngx_http_loom_perm_free(ngx_http_loom_perm_t *perm)
{
    if (perm != &ngx_http_loom_perm_all) {
        free(perm);
    }
}


ngx_http_loom_perm_t *
ngx_http_loom_perm_everything(void)
{
    return &ngx_http_loom_perm_all;
}


/*
 * One pattern.  Returns NULL or the reason it is refused.
 */

static const char *
ngx_http_loom_perm_parse(ngx_http_loom_compile_t *c, u_char *p, size_t len)
{
    u_char                   *last, *q, *seg_start, *name;
    size_t                    nlen;
    ngx_uint_t                kind, in_lit;
    ngx_http_loom_seg_t      *seg;
    ngx_http_loom_part_t     *part;
    ngx_http_loom_pattern_t  *pat;

    if (len == 0) {
        return "empty pattern";
    }

    if (len > NGX_HTTP_LOOM_PERM_MAX_PATTERN) {
        return "pattern longer than 1024 bytes";
    }

    last = p + len;

    pat = c->fill ? &c->patterns[c->npatterns] : NULL;
    c->npatterns++;

    if (pat) {
        pat->segs = &c->segs[c->nsegs];
        pat->nsegs = 0;
        pat->client = 0;
        pat->sub = 0;
    }

    for ( ;; ) {

        /* a segment: from p to the next separator or the end */

        seg_start = p;
        seg = c->fill ? &c->segs[c->nsegs] : NULL;
        c->nsegs++;

        if (seg) {
            seg->parts = &c->parts[c->nparts];
            seg->nparts = 0;
            seg->any = 0;
            seg->star = 0;
            pat->nsegs++;
        }

        in_lit = 0;
        part = NULL;

        while (p < last && *p != NGX_HTTP_LOOM_PERM_SEPARATOR) {

            if (*p == '*') {
                if (p + 1 < last && p[1] == '*') {
                    if (p != seg_start
                        || (p + 2 < last
                            && p[2] != NGX_HTTP_LOOM_PERM_SEPARATOR))
                    {
                        return "\"**\" must be a whole segment";
                    }

                    if (seg) {
                        seg->any = 1;
                    }

                    p += 2;
                    break;
                }

                in_lit = 0;
                part = c->fill ? &c->parts[c->nparts] : NULL;
                c->nparts++;

                if (part) {
                    part->kind = NGX_HTTP_LOOM_PART_STAR;
                    part->data = NULL;
                    part->len = 0;
                    seg->nparts++;
                    seg->star = 1;
                }

                p++;
                continue;
            }

            if (*p == '{') {
                name = p + 1;
                q = name;

                while (q < last && *q != '}') {
                    q++;
                }

                if (q == last) {
                    return "\"{\" without \"}\"";
                }

                nlen = q - name;

                if (nlen == 6 && ngx_strncmp(name, "client", 6) == 0) {
                    kind = NGX_HTTP_LOOM_PART_CLIENT;

                } else if (nlen == 3 && ngx_strncmp(name, "sub", 3) == 0) {
                    kind = NGX_HTTP_LOOM_PART_SUB;

                } else {
                    return "unknown placeholder (only {client} and {sub})";
                }

                in_lit = 0;
                part = c->fill ? &c->parts[c->nparts] : NULL;
                c->nparts++;

                if (part) {
                    part->kind = kind;
                    part->data = NULL;
                    part->len = 0;
                    seg->nparts++;

                    if (kind == NGX_HTTP_LOOM_PART_CLIENT) {
                        pat->client = 1;

                    } else {
                        pat->sub = 1;
                    }
                }

                p = q + 1;
                continue;
            }

            if (*p == '}') {
                return "\"}\" without \"{\"";
            }

            if (*p == '\\') {
                if (p + 1 == last
                    || (p[1] != '*' && p[1] != '{' && p[1] != '}'
                        && p[1] != '\\'))
                {
                    return "\"\\\" must be followed by *, {, } or \\";
                }

                p++;
            }

            /* a literal byte */

            if (!in_lit) {
                in_lit = 1;
                part = c->fill ? &c->parts[c->nparts] : NULL;
                c->nparts++;

                if (part) {
                    part->kind = NGX_HTTP_LOOM_PART_LIT;
                    part->data = &c->text[c->ntext];
                    part->len = 0;
                    seg->nparts++;
                }
            }

            if (part) {
                part->data[part->len++] = *p;
            }

            c->ntext++;
            p++;
        }

        if (p == last) {
            return NULL;
        }

        /* the separator */

        p++;
    }
}


ngx_int_t
ngx_http_loom_perm_check(ngx_http_loom_perm_t *perm, ngx_uint_t op,
    ngx_str_t *topic, ngx_http_loom_perm_vars_t *vars)
{
    u_char                   *name;
    ngx_str_t                 val[4];
    ngx_uint_t                i, client_ok, sub_ok;
    ngx_http_loom_pattern_t  *pat;

    if (perm->everything) {
        return NGX_OK;
    }

    if (op >= NGX_HTTP_LOOM_PERM_NOPS) {
        return NGX_DECLINED;
    }

    client_ok = 0;
    sub_ok = 0;
    ngx_memzero(val, sizeof(val));

    if (vars) {
        val[NGX_HTTP_LOOM_PART_CLIENT] = vars->client;
        val[NGX_HTTP_LOOM_PART_SUB] = vars->sub;

        client_ok = (ngx_http_loom_perm_value_ok(vars->client.data,
                                                 vars->client.len)
                     == NGX_OK);
        sub_ok = (ngx_http_loom_perm_value_ok(vars->sub.data, vars->sub.len)
                  == NGX_OK);
    }

    /* an empty topic may come with no data pointer */
    name = topic->len ? topic->data : (u_char *) "";

    pat = perm->lists[op];

    for (i = 0; i < perm->n[op]; i++) {

        if ((pat[i].client && !client_ok) || (pat[i].sub && !sub_ok)) {
            continue;
        }

        if (ngx_http_loom_perm_match(&pat[i], name, topic->len, val)
            == NGX_OK)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_loom_perm_visible(ngx_http_loom_perm_t *perm, ngx_str_t *topic,
    ngx_http_loom_perm_vars_t *vars)
{
    ngx_uint_t  op;

    for (op = 0; op < NGX_HTTP_LOOM_PERM_NOPS; op++) {
        if (ngx_http_loom_perm_check(perm, op, topic, vars) == NGX_OK) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_loom_perm_value_ok(u_char *p, size_t len)
{
    u_char  *last;

    if (len == 0) {
        return NGX_DECLINED;
    }

    for (last = p + len; p < last; p++) {
        switch (*p) {
        case '*':
        case '{':
        case '}':
        case '\\':
        case NGX_HTTP_LOOM_PERM_SEPARATOR:
        case 0x7f:
            return NGX_DECLINED;

        default:
            if (*p < 0x20) {
                return NGX_DECLINED;
            }
        }
    }

    return NGX_OK;
}


/*
 * The segments of the topic against those of the pattern.  A "**"
 * segment matches any run of topic segments: the last one seen is
 * retried with one more topic segment whenever what follows it fails,
 * as in the usual wildcard matcher, so no input makes this exponential.
 */

static ngx_int_t
ngx_http_loom_perm_match(ngx_http_loom_pattern_t *pat, u_char *topic,
    size_t len, ngx_str_t *val)
{
    u_char      *t, *end, *last, *star_t;
    ngx_uint_t   p, star_p, done;

    last = topic + len;
    t = topic;
    done = 0;
    p = 0;
    star_p = NGX_CONF_UNSET_UINT;
    star_t = NULL;

    while (!done) {
        end = memchr(t, NGX_HTTP_LOOM_PERM_SEPARATOR, last - t);
        if (end == NULL) {
            end = last;
        }

        if (p < pat->nsegs && pat->segs[p].any) {
            star_p = p++;
            star_t = t;
            continue;
        }

        if (p < pat->nsegs
            && ngx_http_loom_perm_seg_match(&pat->segs[p], t, end - t, val)
               == NGX_OK)
        {
            p++;

            if (end == last) {
                done = 1;

            } else {
                t = end + 1;
            }

            continue;
        }

        if (star_p == NGX_CONF_UNSET_UINT) {
            return NGX_DECLINED;
        }

        /* the last "**" takes one more segment */

        end = memchr(star_t, NGX_HTTP_LOOM_PERM_SEPARATOR, last - star_t);

        p = star_p + 1;

        if (end == NULL) {
            /* "**" takes the rest of the topic */
            done = 1;
            break;
        }

        star_t = end + 1;
        t = star_t;
    }

    while (p < pat->nsegs && pat->segs[p].any) {
        p++;
    }

    return p == pat->nsegs ? NGX_OK : NGX_DECLINED;
}


/*
 * One segment.  Its parts are runs ("chunks") of literals and placeholders
 * between '*'s: the first chunk must start the segment, the last one must
 * end it, and the others are found leftmost, in order, in between.
 */

static ngx_int_t
ngx_http_loom_perm_seg_match(ngx_http_loom_seg_t *seg, u_char *s,
    size_t len, ngx_str_t *val)
{
    size_t                 pos, end, clen;
    ngx_uint_t             i, j, first, last;
    ngx_http_loom_part_t  *part;

    part = seg->parts;

    if (!seg->star) {
        if (ngx_http_loom_perm_chunk_len(part, seg->nparts, val) != len) {
            return NGX_DECLINED;
        }

        return ngx_http_loom_perm_chunk(part, seg->nparts, s, len, val);
    }

    for (first = 0; part[first].kind != NGX_HTTP_LOOM_PART_STAR; first++) {
        /* void */
    }

    for (last = seg->nparts - 1;
         part[last].kind != NGX_HTTP_LOOM_PART_STAR;
         last--)
    {
        /* void */
    }

    /* the chunk before the first star */

    pos = ngx_http_loom_perm_chunk_len(part, first, val);

    if (pos > len
        || ngx_http_loom_perm_chunk(part, first, s, pos, val) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* the chunk after the last star */

    clen = ngx_http_loom_perm_chunk_len(&part[last + 1],
                                        seg->nparts - last - 1, val);

    if (clen > len - pos) {
        return NGX_DECLINED;
    }

    end = len - clen;

    if (ngx_http_loom_perm_chunk(&part[last + 1], seg->nparts - last - 1,
                                 s + end, clen, val)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* the chunks between, leftmost first */

    i = first + 1;

    while (i < last) {
        for (j = i; part[j].kind != NGX_HTTP_LOOM_PART_STAR; j++) {
            /* void */
        }

        clen = ngx_http_loom_perm_chunk_len(&part[i], j - i, val);

        for ( ;; ) {
            if (clen > end - pos) {
                return NGX_DECLINED;
            }

            if (ngx_http_loom_perm_chunk(&part[i], j - i, s + pos, clen, val)
                == NGX_OK)
            {
                break;
            }

            pos++;
        }

        pos += clen;
        i = j + 1;
    }

    return NGX_OK;
}


/* the parts, none a star, against exactly len bytes at s */

static ngx_int_t
ngx_http_loom_perm_chunk(ngx_http_loom_part_t *part, ngx_uint_t n,
    u_char *s, size_t len, ngx_str_t *val)
{
    u_char      *data;
    size_t       plen;
    ngx_uint_t   i;

    for (i = 0; i < n; i++) {
        if (part[i].kind == NGX_HTTP_LOOM_PART_LIT) {
            data = part[i].data;
            plen = part[i].len;

        } else {
            data = val[part[i].kind].data;
            plen = val[part[i].kind].len;
        }

        if (plen > len || (plen && ngx_memcmp(s, data, plen) != 0)) {
            return NGX_DECLINED;
        }

        s += plen;
        len -= plen;
    }

    return len == 0 ? NGX_OK : NGX_DECLINED;
}


static size_t
ngx_http_loom_perm_chunk_len(ngx_http_loom_part_t *part, ngx_uint_t n,
    ngx_str_t *val)
{
    size_t      len;
    ngx_uint_t  i;

    len = 0;

    for (i = 0; i < n; i++) {
        len += (part[i].kind == NGX_HTTP_LOOM_PART_LIT)
               ? part[i].len : val[part[i].kind].len;
    }

    return len;
}
