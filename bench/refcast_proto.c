/*
 * Copyright (C) Data Loom
 */


/*
 * What refcast says: the server side of the WebSocket opening handshake
 * and framing (RFC 6455: masked client frames, text, ping, close; no
 * fragments, no extensions), and of the broker's protocol only what the
 * generator's fan-out workload needs.  A message is not parsed as JSON:
 * "action", "id" and "topic" are found by a scan for their first
 * occurrence.  registerTopic and subscribe are acknowledged, a publish is
 * acknowledged when it asks for it and relayed as the broker relays it
 * (the same text without "requireAck", with the sender's id), to the
 * subscribers of this worker and, as one record per sibling worker, to
 * the subscribers of the others.
 *
 * Revisions, for the snapshot workload: a connection that offers
 * dataloom.v2 gets it, and its deliveries carry ,"rev":R,"ts":T as the
 * broker's do.  A publish gets the next revision of its topic in the
 * worker of the publishing connection (the workload has one publisher),
 * and the record to the siblings carries it.  A subscribe with
 * "snapshot":true, and a get, are answered from the worker's own
 * position: the last revision it handed on, with that delivery as "data"
 * (kept once a snapshot was asked for the topic), epoch "reference".
 */

#include "refcast.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loomgen_sha1.h"


#define RC_TOPIC_HASH        4096

#define rc_put(p, s)         (memcpy(p, s, sizeof(s) - 1), (p) + sizeof(s) - 1)


static rc_topic_t  *rc_topics[RC_TOPIC_HASH];


/* a value "key":"value", the first occurrence; no escapes expected */

static int
rc_field(const u_char *p, size_t len, const char *key, size_t klen,
    const u_char **v, size_t *vlen)
{
    const u_char  *q, *end;

    end = p + len;

    q = memmem(p, len, key, klen);
    if (q == NULL) {
        return -1;
    }

    q += klen;

    *v = q;

    q = memchr(q, '"', (size_t) (end - q));
    if (q == NULL) {
        return -1;
    }

    *vlen = (size_t) (q - *v);

    return 0;
}


static rc_topic_t *
rc_topic(const u_char *name, size_t len, int create)
{
    size_t       i;
    uint32_t     h;
    rc_topic_t  *t;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ name[i]) * 16777619u;
    }

    h %= RC_TOPIC_HASH;

    for (t = rc_topics[h]; t; t = t->next) {
        if (t->len == len && memcmp(t->name, name, len) == 0) {
            return t;
        }
    }

    if (!create) {
        return NULL;
    }

    t = calloc(1, sizeof(rc_topic_t) + len + 1);
    if (t == NULL) {
        return NULL;
    }

    memcpy(t->name, name, len);
    t->len = (uint32_t) len;
    t->next = rc_topics[h];
    rc_topics[h] = t;

    return t;
}


static int
rc_grow(void **p, uint32_t *cap, size_t size)
{
    void      *n;
    uint32_t   c;

    c = *cap ? *cap * 2 : 8;

    n = realloc(*p, c * size);
    if (n == NULL) {
        return -1;
    }

    *p = n;
    *cap = c;

    return 0;
}


static int
rc_subscribe(rc_conn_t *c, rc_topic_t *t)
{
    uint32_t  i;

    for (i = 0; i < c->ntopics; i++) {
        if (c->topics[i] == t) {
            return 0;
        }
    }

    if ((t->nsubs == t->cap
         && rc_grow((void **) &t->subs, &t->cap, sizeof(rc_conn_t *)))
        || (c->ntopics == c->tcap
            && rc_grow((void **) &c->topics, &c->tcap, sizeof(rc_topic_t *))))
    {
        return -1;
    }

    t->subs[t->nsubs++] = c;
    t->nv2 += c->v2;
    c->topics[c->ntopics++] = t;

    return 0;
}


void
rc_unsubscribe_all(rc_conn_t *c)
{
    uint32_t     i, j;
    rc_topic_t  *t;

    for (i = 0; i < c->ntopics; i++) {
        t = c->topics[i];

        for (j = 0; j < t->nsubs; j++) {
            if (t->subs[j] == c) {
                t->subs[j] = t->subs[--t->nsubs];
                t->nv2 -= c->v2;
                break;
            }
        }
    }

    c->ntopics = 0;
}


/* an unmasked server frame around len bytes, in one shared buffer */

static rc_buf_t *
rc_frame(int op, const u_char *data, size_t len)
{
    u_char    *p;
    rc_buf_t  *b;

    b = rc_buf_alloc((len < 126 ? 2 : (len < 65536 ? 4 : 10)) + len);
    if (b == NULL) {
        return NULL;
    }

    p = b->data;
    *p++ = (u_char) (0x80 | op);

    if (len < 126) {
        *p++ = (u_char) len;

    } else if (len < 65536) {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 127;
        memset(p, 0, 4);
        p += 4;
        *p++ = (u_char) (len >> 24);
        *p++ = (u_char) (len >> 16);
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;
    }

    memcpy(p, data, len);

    return b;
}


static void
rc_send(rc_conn_t *c, int op, const u_char *data, size_t len)
{
    rc_buf_t  *b;

    b = rc_frame(op, data, len);
    if (b == NULL) {
        rc_close(c);
        return;
    }

    rc_enqueue(c, b);
    rc_stats.frames++;

    if (b->refs == 0) {
        free(b);
    }
}


static void
rc_respond(rc_conn_t *c, const u_char *id, size_t idlen, const u_char *act,
    size_t alen, unsigned code, const char *extra, size_t elen)
{
    u_char  buf[600], *text, *p;
    size_t  size;

    if (idlen > 256 || alen > 64) {
        idlen = 0;
        alen = 0;
    }

    size = idlen + alen + elen + 64;

    text = (size <= sizeof(buf)) ? buf : malloc(size);
    if (text == NULL) {
        rc_close(c);
        return;
    }

    p = rc_put(text, "{\"id\":\"");
    p = (u_char *) memcpy(p, id, idlen) + idlen;
    p = rc_put(p, "\",\"action\":\"");
    p = (u_char *) memcpy(p, act, alen) + alen;
    p += sprintf((char *) p, "\",\"code\":%u,", code);
    p = (u_char *) memcpy(p, extra, elen) + elen;
    p = rc_put(p, "\"type\":\"response\"}\n");

    rc_send(c, RC_OP_TEXT, text, (size_t) (p - text));

    if (text != buf) {
        free(text);
    }
}


/* the answer of a subscribe with snapshot, or of a get: the position */

static void
rc_respond_position(rc_conn_t *c, const u_char *id, size_t idlen,
    const u_char *act, size_t alen, rc_topic_t *t)
{
    int      n;
    u_char  *extra, *p;
    size_t   vlen;

    vlen = (t && t->vlen) ? t->vlen : 4;

    extra = malloc(vlen + 128);
    if (extra == NULL) {
        rc_close(c);
        return;
    }

    p = rc_put(extra, "\"data\":");
    p = (t && t->vlen) ? (u_char *) memcpy(p, t->value, vlen) + vlen
                       : rc_put(p, "null");
    n = sprintf((char *) p, ",\"rev\":%" PRIu64 ",\"epoch\":\"reference\","
                "\"ts\":0,", t ? t->rev : 0);

    rc_respond(c, id, idlen, act, alen, 200, (char *) extra,
               (size_t) (p + n - extra));
    free(extra);
}


/* {..."}\n as {...",\"rev\":R,\"ts\":T}\n, framed */

static rc_buf_t *
rc_frame_v2(const u_char *text, size_t len, uint64_t rev)
{
    u_char           *d, *p;
    rc_buf_t         *b;
    struct timespec   ts;

    d = malloc(len + 64);
    if (d == NULL || len < 2) {
        free(d);
        return NULL;
    }

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    p = (u_char *) memcpy(d, text, len - 2) + len - 2;
    p += sprintf((char *) p, ",\"rev\":%" PRIu64 ",\"ts\":%" PRIu64 "}\n",
                 rev, (uint64_t) ts.tv_sec * 1000
                      + (uint64_t) ts.tv_nsec / 1000000);

    b = rc_frame(RC_OP_TEXT, d, (size_t) (p - d));
    free(d);

    return b;
}


/*
 * The deliveries of one publish (revision rev of t), framed once per
 * kind, to every local subscriber
 */

static void
rc_deliver(rc_topic_t *t, const u_char *text, size_t len, uint64_t rev)
{
    uint32_t   i;
    rc_buf_t  *b, *b2, *f;

    if (t == NULL) {
        return;
    }

    t->rev = rev;

    if (t->keep && len > 1) {
        if (len > t->vcap) {
            free(t->value);
            t->value = malloc(len);
            t->vcap = t->value ? len : 0;
        }

        t->vlen = t->value ? len - 1 : 0;

        if (t->value) {
            memcpy(t->value, text, len - 1);
        }
    }

    if (t->nsubs == 0) {
        return;
    }

    b = (t->nsubs > t->nv2) ? rc_frame(RC_OP_TEXT, text, len) : NULL;
    b2 = t->nv2 ? rc_frame_v2(text, len, rev) : NULL;

    rc_stats.deliveries += t->nsubs;
    rc_stats.frames += t->nsubs;

    /* backwards: a subscriber closed here is swapped with the last one */

    for (i = t->nsubs; i-- > 0; ) {
        f = t->subs[i]->v2 ? b2 : b;

        if (f) {
            rc_enqueue(t->subs[i], f);
        }
    }

    if (b && b->refs == 0) {
        free(b);
    }

    if (b2 && b2->refs == 0) {
        free(b2);
    }
}


/*
 * A publish: the delivery is the text without ,"requireAck":true (when
 * it ends so) and with ,"senderId":"<id>"}\n instead of the last brace.
 * A record for the siblings is [u32 length][u16 topic length][u64
 * revision][topic][delivery], built once and queued to every link.
 */

static void
rc_publish(rc_conn_t *c, const u_char *p, size_t len, const u_char *topic,
    size_t tlen)
{
    u_char    *d, *r;
    size_t     keep, dlen;
    uint16_t     tl;
    uint32_t     i, rlen;
    uint64_t     rev;
    rc_buf_t    *b;
    rc_topic_t  *t;

    t = rc_topic(topic, tlen, 1);
    if (t == NULL) {
        rc_close(c);
        return;
    }

    rev = t->rev + 1;
    keep = len - 1;

    if (len > sizeof(",\"requireAck\":true}")
        && memcmp(p + len - (sizeof(",\"requireAck\":true}") - 1),
                  rc_str(",\"requireAck\":true}")) == 0)
    {
        keep = len - (sizeof(",\"requireAck\":true}") - 1);
    }

    dlen = keep + sizeof(",\"senderId\":\"\"}\n") - 1 + RC_SENDER_LEN;
    rlen = (uint32_t) (4 + 2 + 8 + tlen + dlen);

    b = rc_buf_alloc(rlen);
    if (b == NULL) {
        rc_close(c);
        return;
    }

    r = b->data;
    memcpy(r, &rlen, 4);
    tl = (uint16_t) tlen;
    memcpy(r + 4, &tl, 2);
    memcpy(r + 6, &rev, 8);
    memcpy(r + 14, topic, tlen);

    d = r + 14 + tlen;
    memcpy(d, p, keep);
    r = rc_put(d + keep, ",\"senderId\":\"");
    memcpy(r, c->sender, RC_SENDER_LEN);
    r = rc_put(r + RC_SENDER_LEN, "\"}\n");

    rc_stats.publishes++;

    /*
     * The siblings first: a connection is written in the order it got
     * something to write, so the record leaves before this worker's own
     * subscribers are written to, and the other workers deliver in
     * parallel (as every nginx worker gets Redis's message at once).
     */

    for (i = 0; i < rc_npeers; i++) {
        rc_enqueue(rc_peers[i], b);
    }

    rc_deliver(t, d, dlen, rev);

    if (b->refs == 0) {
        free(b);
    }
}


static void
rc_on_message(rc_conn_t *c, const u_char *p, size_t len)
{
    int            ack;
    size_t         alen, idlen, tlen;
    rc_topic_t    *t;
    const u_char  *act, *id, *topic;

    if (rc_field(p, len, rc_str("\"action\":\""), &act, &alen) != 0) {
        act = (const u_char *) "";
        alen = 0;
    }

    if (rc_field(p, len, rc_str("\"id\":\""), &id, &idlen) != 0) {
        id = (const u_char *) "";
        idlen = 0;
    }

    if (rc_field(p, len, rc_str("\"topic\":\""), &topic, &tlen) != 0
        || tlen == 0 || tlen > 1024)
    {
        rc_respond(c, id, idlen, act, alen, 400,
                   rc_str("\"message\":\"no topic\","));
        return;
    }

    ack = memmem(p, len, rc_str("\"requireAck\":true")) != NULL;

    if (alen == 7 && memcmp(act, "publish", 7) == 0) {
        rc_publish(c, p, len, topic, tlen);

        if (ack && !c->dead) {
            rc_respond(c, id, idlen, act, alen, 200, rc_str(""));
        }

        return;
    }

    if (alen == 9 && memcmp(act, "subscribe", 9) == 0) {
        t = rc_topic(topic, tlen, 1);

        if (t == NULL || rc_subscribe(c, t) != 0) {
            rc_respond(c, id, idlen, act, alen, 500, rc_str(""));
            return;
        }

        rc_stats.subscribes++;

        if (memmem(p, len, rc_str("\"snapshot\":true")) != NULL) {
            t->keep = 1;
            rc_respond_position(c, id, idlen, act, alen, t);
            return;
        }

        rc_respond(c, id, idlen, act, alen, 200, rc_str(""));
        return;
    }

    if (alen == 3 && memcmp(act, "get", 3) == 0) {
        rc_respond_position(c, id, idlen, act, alen,
                            rc_topic(topic, tlen, 0));
        return;
    }

    if (alen == 13 && memcmp(act, "registerTopic", 13) == 0) {
        rc_respond(c, id, idlen, act, alen, 200, rc_str("\"data\":{},"));
        return;
    }

    rc_respond(c, id, idlen, act, alen, 400,
               rc_str("\"message\":\"not in the reference\","));
}


/*
 * Splits what a client sent into frames, unmasks them in place, and
 * returns how many bytes were used; a partial frame stays for the next
 * read.
 */

size_t
rc_on_frames(rc_conn_t *c, u_char *b, size_t n)
{
    int        op;
    size_t     pos, hl, i;
    u_char    *p, *key;
    uint64_t   len;

    for (pos = 0; !c->dead && n - pos >= 2; pos += hl + (size_t) len) {
        p = b + pos;
        op = p[0] & 0x0f;

        if ((p[0] & 0xf0) != 0x80 || !(p[1] & 0x80)) {
            /* fragments, reserved bits, an unmasked frame: not here */
            rc_close(c);
            return n;
        }

        len = p[1] & 0x7f;
        hl = 2;

        if (len == 126) {
            if (n - pos < 4) {
                break;
            }

            len = (uint64_t) p[2] << 8 | p[3];
            hl = 4;

        } else if (len == 127) {
            if (n - pos < 10) {
                break;
            }

            for (len = 0, hl = 2; hl < 10; hl++) {
                len = len << 8 | p[hl];
            }
        }

        if (len > RC_MAX_MESSAGE) {
            rc_close(c);
            return n;
        }

        hl += 4;

        if (n - pos < hl + len) {
            break;
        }

        key = p + hl - 4;
        p += hl;

        for (i = 0; i < len; i++) {
            p[i] ^= key[i & 3];
        }

        if (c->state == RC_S_CLOSING) {
            continue;
        }

        switch (op) {

        case RC_OP_TEXT:
            rc_on_message(c, p, (size_t) len);
            break;

        case RC_OP_PING:
            rc_send(c, RC_OP_PONG, p, (size_t) rc_min(len, 125));
            break;

        case RC_OP_CLOSE:
            /* the same code back, then the TCP connection closes */
            rc_send(c, RC_OP_CLOSE, p, (size_t) rc_min(len, 2));
            c->state = RC_S_CLOSING;
            c->close_after = 1;
            break;

        default:
            break;
        }
    }

    return pos;
}


/* a sibling's records: deliveries to this worker's subscribers */

size_t
rc_on_records(rc_conn_t *c, const u_char *b, size_t n)
{
    size_t    pos;
    uint16_t  tl;
    uint32_t  rlen;
    uint64_t  rev;

    (void) c;

    for (pos = 0; n - pos >= 14; pos += rlen) {
        memcpy(&rlen, b + pos, 4);
        memcpy(&tl, b + pos + 4, 2);
        memcpy(&rev, b + pos + 6, 8);

        if (n - pos < rlen) {
            break;
        }

        rc_stats.relayed++;
        rc_deliver(rc_topic(b + pos + 14, tl, 1), b + pos + 14 + tl,
                   rlen - 14 - tl, rev);
    }

    return pos;
}


/* the upgrade request; answers 101 with Sec-WebSocket-Accept */

size_t
rc_on_handshake(rc_conn_t *c, const u_char *b, size_t n)
{
    int            len;
    char           key[64], acc[32], resp[256];
    u_char         digest[20];
    size_t         klen;
    const u_char  *end, *line, *eol, *v;

    end = memmem(b, n, "\r\n\r\n", 4);

    if (end == NULL) {
        if (n > RC_MAX_HTTP) {
            rc_close(c);
            return n;
        }

        return 0;
    }

    v = NULL;
    klen = 0;

    for (line = b; line < end; line = eol + 2) {
        eol = memmem(line, (size_t) (end + 2 - line), "\r\n", 2);

        if (eol - line > 22
            && strncasecmp((const char *) line, "Sec-WebSocket-Protocol:", 23)
               == 0
            && memmem(line, (size_t) (eol - line), rc_str("dataloom.v2")))
        {
            c->v2 = 1;
        }

        if (eol - line > 18
            && strncasecmp((const char *) line, "Sec-WebSocket-Key:", 18) == 0)
        {
            for (v = line + 18; v < eol && *v == ' '; v++) { /* void */ }
            for (klen = (size_t) (eol - v); klen && v[klen - 1] == ' '; klen--)
            {
                /* void */
            }
        }
    }

    if (v == NULL || klen == 0 || klen > 24) {
        rc_send_raw(c, (u_char *) rc_str("HTTP/1.1 400 Bad Request\r\n"
                                         "Connection: close\r\n"
                                         "Content-Length: 0\r\n\r\n"));
        c->close_after = 1;
        return n;
    }

    memcpy(key, v, klen);
    memcpy(key + klen, LG_WS_GUID, sizeof(LG_WS_GUID) - 1);
    lg_sha1((u_char *) key, klen + sizeof(LG_WS_GUID) - 1, digest);
    lg_base64(digest, 20, acc);

    len = snprintf(resp, sizeof(resp),
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n%s\r\n", acc,
                   c->v2 ? "Sec-WebSocket-Protocol: dataloom.v2\r\n" : "");

    c->state = RC_S_OPEN;
    rc_send_raw(c, (u_char *) resp, (size_t) len);

    return (size_t) (end - b) + 4;
}
