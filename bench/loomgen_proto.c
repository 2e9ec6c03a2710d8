/*
 * Copyright (C) Data Loom
 */


/*
 * The broker's messages: publishes built in place in the output buffer,
 * the first requests of each role (registerTopic, subscribe), and the
 * responses and deliveries that come back, scanned for the few fields
 * needed rather than parsed, and counted.
 */

#include "loomgen.h"

#include <stdatomic.h>


/*
 * A publish, built in place:
 *
 * {"id":"p<pub>.<seq>","action":"publish","topic":"<topic>",
 *  "data":{"seq":<seq>,"ts":<ns>,"pad":"xxx"},"requireAck":true}
 *
 * The pad makes the delivery (the same text without "requireAck", with
 * a 36-byte "senderId" and a newline) --size bytes long.
 */

#define LG_P1  "{\"id\":\"p"
#define LG_P2  "\",\"action\":\"publish\",\"topic\":\""
#define LG_P3  "\",\"data\":{\"seq\":"
#define LG_P4  ",\"ts\":"
#define LG_P5  ",\"pad\":\""
#define LG_P6  "\"},\"requireAck\":true}"
#define LG_P_DELIVERY_EXTRA                                                  \
    ((int) sizeof(",\"senderId\":\"\"}\n") - 1 + LG_SENDER_LEN               \
     - ((int) sizeof(",\"requireAck\":true}") - 1))

#define lg_put(p, s)  (memcpy(p, s, sizeof(s) - 1), (p) + sizeof(s) - 1)


/*
 * --json-schema: ten properties, a nested object, an array, an enum and a
 * pattern; a publish carries three of them (seq, ts, pad), all required,
 * and nothing else is allowed
 */
#define LG_JSON_SCHEMA                                                       \
    "{\"type\":\"object\",\"properties\":{"                                \
    "\"seq\":{\"type\":\"integer\",\"minimum\":1},"                        \
    "\"ts\":{\"type\":\"integer\",\"minimum\":0},"                         \
    "\"pad\":{\"type\":\"string\",\"pattern\":\"^x*$\"},"                 \
    "\"sender\":{\"type\":\"string\",\"maxLength\":64},"                   \
    "\"kind\":{\"enum\":[\"a\",\"b\",\"c\"]},"                             \
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"      \
    "\"score\":{\"type\":\"number\",\"minimum\":0,\"maximum\":100},"       \
    "\"ok\":{\"type\":\"boolean\"},"                                       \
    "\"meta\":{\"type\":\"object\",\"properties\":{"                       \
    "\"host\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\"}}},"   \
    "\"note\":{\"type\":[\"string\",\"null\"]}},"                           \
    "\"required\":[\"seq\",\"ts\",\"pad\"],"                                \
    "\"additionalProperties\":false}"


int
lg_publish(lg_loop_t *lp, lg_conn_t *c, uint64_t ts)
{
    u_char    *p, *payload, key[4];
    size_t     len, tlen;
    int64_t    pad;
    uint64_t   seq;
    unsigned   dp, ds, dt;

    seq = c->seq + 1;
    tlen = lg_topic_name_len[c->topic];

    dp = lg_digits(c->index);
    ds = lg_digits(seq);
    dt = lg_digits(ts);

    len = sizeof(LG_P1 LG_P2 LG_P3 LG_P4 LG_P5 LG_P6) - 1
          + dp + 1 + 2 * ds + dt + tlen;

    pad = (int64_t) lg_conf.size - (int64_t) len - LG_P_DELIVERY_EXTRA;

    if (pad > 0) {
        len += (size_t) pad;

    } else {
        pad = 0;
    }

    p = lg_wspace(c, lg_frame_header_len(len) + len);
    if (p == NULL) {
        return -1;
    }

    payload = lg_frame_header(lp, p, LG_OP_TEXT, len, key);

    p = lg_put(payload, LG_P1);
    p = lg_put_u64(p, c->index, dp);
    *p++ = '.';
    p = lg_put_u64(p, seq, ds);
    p = lg_put(p, LG_P2);
    memcpy(p, lg_topic_name[c->topic], tlen);
    p += tlen;
    p = lg_put(p, LG_P3);
    p = lg_put_u64(p, seq, ds);
    p = lg_put(p, LG_P4);
    p = lg_put_u64(p, ts, dt);
    p = lg_put(p, LG_P5);
    memcpy(p, lg_pad_bytes, (size_t) pad);
    p += pad;
    p = lg_put(p, LG_P6);

    lg_mask(payload, len, key);

    c->wlen = (uint32_t) (p - c->wbuf);
    c->seq = seq;
    c->ring[seq & c->ring_mask] = ts;

    lp->st.sent++;
    lp->sent_topic[c->topic]++;
    lg_dirty(lp, c);

    return 0;
}


/* inbound messages */

static void
lg_on_response(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    char          kind;
    uint64_t      code, seq, idx, t;
    const u_char  *end, *q;

    end = p + len;

    q = memmem(p, len, "\"code\":", 7);

    if (q == NULL || lg_get_u64(q + 7, end, &code) == NULL) {
        lp->st.malformed++;
        lg_print_problem("response without a code", p, len);
        return;
    }

    kind = lg_has(p, end, lg_str("{\"id\":\"")) ? (char) p[7] : '\0';

    switch (kind) {

    case 'p':
        if (c->role != LG_R_PUB) {
            break;
        }

        c->acks++;

        if (!lp->counting) {
            return;
        }

        if (code != 200) {
            lp->st.errors++;
            lg_print_problem("publish failed", p, len);
            return;
        }

        lp->st.acked++;
        lp->st.last_ack = lp->now_read;

        /* "p<pub>.<seq>": the send time is in the ring */

        q = lg_get_u64(p + 8, end, &idx);

        if (q != NULL && q < end && *q == '.'
            && lg_get_u64(q + 1, end, &seq) != NULL
            && seq <= c->seq && c->seq - seq <= c->ring_mask)
        {
            t = c->ring[seq & c->ring_mask];
            lg_hist_record(&lp->st.ack_latency,
                           lp->now_read > t ? lp->now_read - t : 0);
        }

        return;

    case 's':
        if (c->role != LG_R_SUB || c->ready) {
            break;
        }

        if (code != 200) {
            lg_print_problem("subscribe failed", p, len);
            c->attempts = (uint8_t) (lg_conf.retries + 1);   /* no retry */
            lg_conn_fail(lp, c, NULL);
            return;
        }

        lg_conn_ready(lp, c);
        return;

    case 'r':
        if (c->role != LG_R_CTRL) {
            break;
        }

        if (code != 200) {
            lg_print_problem("registerTopic failed", p, len);
            atomic_store(&lg_sh.fatal, 1);
            atomic_store(&lg_sh.stop, 1);
            return;
        }

        if (++c->delivered == lg_conf.topics) {
            lg_conn_ready(lp, c);
        }

        return;

    default:
        break;
    }

    lp->st.unexpected++;
    lg_print_problem("unexpected response", p, len);
}


static void
lg_on_delivery(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    uint64_t       pub, seq, ts, d, bit;
    lg_slot_t     *s;
    const u_char  *end, *q;

    if (c->role != LG_R_SUB) {
        lp->st.unexpected++;
        lg_print_problem("delivery to a non-subscriber", p, len);
        return;
    }

    if (!lp->counting) {
        return;
    }

    end = p + len;

    /* {"id":"p<pub>.<seq>",...,"data":{"seq":<seq>,"ts":<ts>,... */

    q = lg_get_u64(p + 8, end, &pub);

    if (q == NULL) {
        goto malformed;
    }

    q = memmem(q, (size_t) (end - q), "\"data\":{\"seq\":", 14);

    if (q == NULL) {
        goto malformed;
    }

    q = lg_get_u64(q + 14, end, &seq);

    if (q == NULL || !lg_has(q, end, lg_str(",\"ts\":"))) {
        goto malformed;
    }

    q = lg_get_u64(q + 6, end, &ts);

    if (q == NULL) {
        goto malformed;
    }

    lg_hist_record(&lp->st.latency, lp->now_read > ts ? lp->now_read - ts
                                                        : 0);

    /* publisher j publishes to topic j % K; it is slot j / K here */

    if (pub % lg_conf.topics != c->topic || pub / lg_conf.topics >= c->nslots
        || seq == 0)
    {
        lp->st.misrouted++;
        lg_print_problem("delivery from an unexpected publisher", p, len);
        return;
    }

    s = &c->slots[pub / lg_conf.topics];

    if (seq > s->max) {
        d = seq - s->max;
        s->bits = (d >= 64) ? 0 : s->bits << d;
        s->bits |= 1;
        s->max = seq;

    } else {
        d = s->max - seq;

        if (d < 64) {
            bit = 1ULL << d;

            if (s->bits & bit) {
                lp->st.duplicates++;
                return;
            }

            s->bits |= bit;
        }

        lp->st.out_of_order++;
    }

    c->delivered++;
    lp->st.delivered++;
    lp->st.delivered_bytes += len;
    lp->st.last_delivery = lp->now_read;

    return;

malformed:

    lp->st.malformed++;
    lg_print_problem("malformed delivery", p, len);
}


void
lg_on_message(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len)
{
    size_t  n;

    if (c->close_sent && !lp->counting) {
        return;
    }

    n = len;

    if (n && p[n - 1] == '\n') {
        n--;
    }

    /* responses end in "type":"response"}, deliveries in "senderId" */

    if (n >= sizeof("\"type\":\"response\"}") - 1
        && memcmp(p + n - (sizeof("\"type\":\"response\"}") - 1),
                  "\"type\":\"response\"}",
                  sizeof("\"type\":\"response\"}") - 1) == 0)
    {
        lg_on_response(lp, c, p, len);
        return;
    }

    if (lg_has(p, p + len, lg_str("{\"id\":\"p"))) {
        lg_on_delivery(lp, c, p, len);
        return;
    }

    lp->st.unexpected++;
    lg_print_problem("unexpected message", p, len);
}


/* the first request of a connection, once it is open */

void
lg_on_open(lg_loop_t *lp, lg_conn_t *c)
{
    int       len;
    char      req[1400];
    uint32_t  k;

    switch (c->role) {

    case LG_R_CTRL:
        for (k = 0; k < lg_conf.topics; k++) {
            len = snprintf(req, sizeof(req),
                           "{\"id\":\"r%u\",\"action\":\"registerTopic\","
                           "\"topic\":\"%s\",\"data\":%s,%s"
                           "\"requireAck\":true}",
                           k, lg_topic_name[k],
                           lg_conf.json_schema
                           ? LG_JSON_SCHEMA
                           : "{\"seq\":null,\"ts\":null,\"pad\":null}",
                           lg_conf.json_schema
                           ? "\"schemaType\":\"json-schema\"," : "");

            if (lg_send_text(lp, c, req, (size_t) len) != 0) {
                lg_conn_fail(lp, c, "output buffer full");
                return;
            }
        }

        break;

    case LG_R_SUB:
        len = snprintf(req, sizeof(req),
                       "{\"id\":\"s%u\",\"action\":\"subscribe\","
                       "\"topic\":\"%s\",\"requireAck\":true}",
                       c->index, lg_topic_name[c->topic]);

        (void) lg_send_text(lp, c, req, (size_t) len);
        break;

    case LG_R_PUB:
        lg_conn_ready(lp, c);
        break;

    default: /* LG_R_IDLE: alive once it answers a ping */
        (void) lg_send_frame(lp, c, LG_OP_PING, (const u_char *) "loomgen",
                             7);
        break;
    }
}
