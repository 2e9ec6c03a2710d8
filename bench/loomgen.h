/*
 * Copyright (C) Data Loom
 */


#ifndef _LOOMGEN_H_INCLUDED_
#define _LOOMGEN_H_INCLUDED_


#define _GNU_SOURCE

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "loomgen_hist.h"
#include "loomgen_sha1.h"


#define LG_NS                1000000000ULL
#define LG_MS                1000000ULL

#define LG_RBUF_SIZE         (2 * 1024 * 1024)   /* read buffer per loop */
#define LG_READ_MAX          (256 * 1024)        /* bytes per recv() */
#define LG_MAX_MESSAGE       (LG_RBUF_SIZE - LG_READ_MAX - 16)
#define LG_SMALL_WBUF        1024                /* non-publishers */
#define LG_MAX_HTTP          8192                /* handshake response */
#define LG_MAX_EVENTS        1024
#define LG_SENDER_LEN        36    /* the server's generated ClientId */
#define LG_MAX_CODES         16    /* distinct close codes recorded */
#define LG_PRINT_ERRORS      5     /* error messages printed, at most */
#define LG_SWEEP_NS          (100 * LG_MS)
#define LG_SNAP_NS           (200 * LG_MS)
#define LG_RETRY_NS          (250 * LG_MS)
#define LG_BARRIER_POLL_NS   (1 * LG_MS)
#define LG_START_DELAY_NS    (20 * LG_MS)

#define LG_OP_CONT           0x0
#define LG_OP_TEXT           0x1
#define LG_OP_BINARY         0x2
#define LG_OP_CLOSE          0x8
#define LG_OP_PING           0x9
#define LG_OP_PONG           0xa

#define lg_min(a, b)         ((a) < (b) ? (a) : (b))
#define lg_max(a, b)         ((a) > (b) ? (a) : (b))
#define lg_str(s)            (s), (sizeof(s) - 1)


/* connection states */
enum {
    LG_C_NEW = 0,        /* not started yet */
    LG_C_RETRY,          /* failed, starts again at "started" */
    LG_C_CONNECTING,     /* TCP connect in progress */
    LG_C_HANDSHAKE,      /* HTTP upgrade request sent */
    LG_C_OPEN,           /* WebSocket open */
    LG_C_CLOSING,        /* a close frame went out or came in */
    LG_C_CLOSED,         /* fd closed: done (or failed) */
};

/* connection roles */
enum {
    LG_R_CTRL = 0,       /* registers the topics */
    LG_R_SUB,
    LG_R_PUB,
    LG_R_IDLE,
};

/* phases of a loop; each ends at a barrier shared by all loops */
enum {
    LG_PH_REGISTER = 0,
    LG_PH_SUBSCRIBE,
    LG_PH_PUBLISHERS,
    LG_PH_RUN,
    LG_PH_DRAIN,
    LG_PH_OPEN,
    LG_PH_HOLD,
    LG_PH_CLOSE,
    LG_PH_DONE,
    LG_PH_COUNT
};


typedef struct {
    const char          *host;
    int                  port;
    const char          *path;
    const char          *header;         /* an extra header line */
    const char          *label;
    const char          *json;
    char                 run[64];

    uint32_t             topics;
    uint32_t             subscribers;
    uint32_t             publishers;
    uint32_t             connections;    /* connections-only mode if > 0 */
    uint32_t             catch_up;       /* catch-up mode: revisions */
    uint32_t             snapshots;      /* snapshot mode: subscribers */
    uint32_t             threads;
    uint32_t             window;
    uint32_t             size;
    uint32_t             max_pending;
    uint32_t             retries;

    double               rate;           /* per publisher, 0: unpaced */
    double               duration;
    double               drain;
    double               ramp;
    double               hold;
    double               timeout;

    pid_t                nginx_master;
    int                  quiet;
    int                  json_schema;    /* topics with a JSON Schema */

    struct sockaddr_in   addr;
    char                 host_header[300];
} lg_conf_t;


/* a subscriber's view of one publisher of its topic */
typedef struct {
    uint64_t             max;            /* highest seq seen */
    uint64_t             bits;           /* bit i: seq max - i seen */
} lg_slot_t;


typedef struct {
    int                  fd;
    uint8_t              state;
    uint8_t              role;
    uint8_t              ready;          /* subscribed, registered, ... */
    uint8_t              dirty;          /* on the loop's flush list */
    uint8_t              close_sent;
    uint8_t              dead;           /* accounted as gone */
    uint8_t              attempts;
    uint8_t              frag_op;
    uint32_t             events;         /* registered with epoll */

    uint32_t             index;          /* within its role, global */
    uint32_t             topic;

    uint64_t             started;        /* connect (or retry) time */

    u_char              *wbuf;
    uint32_t             wpos;
    uint32_t             wlen;
    uint32_t             wcap;

    u_char              *carry;          /* a partial frame between reads */
    uint32_t             clen;
    uint32_t             ccap;

    u_char              *frag;           /* a fragmented message */
    uint32_t             flen;
    uint32_t             fcap;

    char                 key[25];        /* Sec-WebSocket-Key */

    /* publisher */
    uint64_t             seq;            /* last sequence sent */
    uint64_t             acks;           /* responses to publishes */
    uint64_t            *ring;           /* send times, by seq */
    uint64_t             ring_mask;
    uint64_t             offset;         /* schedule phase, ns */

    /* subscriber; the control connection counts registrations here */
    lg_slot_t           *slots;
    uint32_t             nslots;
    uint64_t             delivered;
} lg_conn_t;


typedef struct {
    uint32_t             code;
    uint64_t             count;
} lg_code_t;


/* what a loop counts; summed over loops for the report */
typedef struct {
    uint64_t             sent;
    uint64_t             acked;
    uint64_t             errors;
    uint64_t             delivered;
    uint64_t             delivered_bytes;
    uint64_t             duplicates;
    uint64_t             out_of_order;
    uint64_t             misrouted;
    uint64_t             malformed;
    uint64_t             unexpected;
    uint64_t             scheduled;
    uint64_t             late;           /* sent > 1 ms after due */
    uint64_t             lag_max;
    uint64_t             connect_failures;
    uint64_t             failed;         /* gave up after retries */
    uint64_t             disconnects;    /* without a close frame */
    uint64_t             pings;
    uint64_t             closed;         /* close handshakes completed */
    uint64_t             forced;         /* closed at the close timeout */
    uint64_t             ready;          /* connections that got ready */
    uint64_t             dead_subs;      /* during run and drain */
    uint64_t             dead_pubs;
    uint64_t             last_delivery;
    uint64_t             last_ack;
    uint32_t             ncodes;
    lg_code_t            codes[LG_MAX_CODES];
    lg_hist_t            latency;
    lg_hist_t            ack_latency;
} lg_stats_t;


/* what the progress printer reads, under the shared mutex */
typedef struct {
    int                  phase;
    uint64_t             sent;
    uint64_t             acked;
    uint64_t             errors;
    uint64_t             delivered;
    uint64_t             ready;
    uint64_t             open;
} lg_snap_t;


typedef struct {
    atomic_uint          arrived;
    atomic_int           released;
} lg_barrier_t;


typedef struct {
    int                  id;
    int                  ep;
    pthread_t            thread;

    lg_conn_t           *conns;          /* [ctrl] [subs] [pubs] or [idle] */
    uint32_t             nconns;
    lg_conn_t           *ctrl;
    lg_conn_t           *subs;
    uint32_t             nsubs;
    lg_conn_t           *pubs;
    uint32_t             npubs;

    lg_conn_t          **dirty;
    uint32_t             ndirty;

    u_char              *rbuf;
    uint64_t             rng;

    uint64_t             now;
    uint64_t             now_read;       /* when the last recv() returned */
    uint64_t             next_due;       /* the next publish, if paced */

    int                  phase;
    lg_barrier_t        *wait;
    int                  counting;
    int                  sent_published;

    /* the ramp of the current phase: conns[first..last) */
    uint32_t             first;
    uint32_t             last;
    uint32_t             next;
    uint64_t             ramp_start;
    double               ramp_rate;
    uint32_t             pending;        /* connecting, not ready */
    uint32_t             settled;        /* ready or failed */
    uint64_t             next_sweep;
    uint64_t             deadline;       /* close phase */

    uint64_t             open;           /* connections open now */
    uint32_t             nfds;           /* sockets now */

    uint64_t            *sent_topic;     /* [topics] */
    uint32_t            *subs_run;       /* subscribed at the run start */
    uint32_t            *subs_live;
    uint64_t             dead_delivered;
    uint64_t             dead_pending;   /* acks that will never come */

    uint64_t             next_snap;
    lg_snap_t            snap;

    lg_stats_t           st;
} lg_loop_t;


typedef struct {
    uint64_t    expected;
    uint64_t    subscribed;
    uint64_t    sent_total;
    double      run_s;
    double      setup_s;
    double      cpu_user;        /* the generator's own CPU time, s */
    double      cpu_sys;
    double      publish_rate;
    double      delivery_rate;
    lg_stats_t  st;
} lg_total_t;


/* what the loops share; the main thread reads it at the end */
typedef struct {
    lg_barrier_t         bar[LG_PH_COUNT];
    _Atomic uint64_t     t0;
    _Atomic uint64_t     t_end;
    _Atomic uint64_t     drain_end;
    _Atomic uint64_t     hold_end;
    _Atomic uint64_t     run_end;        /* when the drain finished */
    _Atomic uint64_t    *sent_topic;
    atomic_int           stop;
    atomic_int           fatal;
    atomic_int           printed;
    atomic_uint          done;
    pthread_mutex_t      mutex;

    uint64_t             rss_before;     /* kB, summed over workers */
    uint64_t             rss_after;
    int                  workers_before;
    int                  workers_after;
    uint64_t             setup_end;
} lg_shared_t;


/* loomgen.c: the configuration, what setup allocates, logging */

extern lg_conf_t         lg_conf;
extern lg_shared_t       lg_sh;
extern lg_loop_t        *lg_loops;
extern char            **lg_topic_name;
extern uint32_t         *lg_topic_name_len;
extern const char       *lg_pad_bytes;

void lg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lg_print_problem(const char *what, const u_char *p, size_t len);


/* loomgen_ws.c: the WebSocket codec (RFC 6455, client side) */

int lg_send_frame(lg_loop_t *lp, lg_conn_t *c, int op, const u_char *data,
    size_t len);
int lg_send_text(lg_loop_t *lp, lg_conn_t *c, const char *text, size_t len);
void lg_send_close(lg_loop_t *lp, lg_conn_t *c, unsigned code);
size_t lg_on_frames(lg_loop_t *lp, lg_conn_t *c, const u_char *b, size_t n);
size_t lg_on_handshake(lg_loop_t *lp, lg_conn_t *c, const u_char *b,
    size_t n);


/* loomgen_proto.c: the broker's JSON messages, built and scanned */

int lg_publish(lg_loop_t *lp, lg_conn_t *c, uint64_t ts);
void lg_on_message(lg_loop_t *lp, lg_conn_t *c, const u_char *p, size_t len);
void lg_on_open(lg_loop_t *lp, lg_conn_t *c);


/* loomgen_conn.c: the connection state machine on epoll */

u_char *lg_wspace(lg_conn_t *c, size_t len);
void lg_flush_all(lg_loop_t *lp);
void lg_on_event(lg_loop_t *lp, lg_conn_t *c, uint32_t events);
void lg_on_control(lg_loop_t *lp, lg_conn_t *c, int op, const u_char *p,
    size_t len);
void lg_conn_start(lg_loop_t *lp, lg_conn_t *c);
void lg_conn_close_fd(lg_loop_t *lp, lg_conn_t *c);
void lg_conn_ready(lg_loop_t *lp, lg_conn_t *c);
void lg_conn_gone(lg_loop_t *lp, lg_conn_t *c);
void lg_conn_fail(lg_loop_t *lp, lg_conn_t *c, const char *why);


/* loomgen_work.c: the workloads, phase by phase, and the loop */

void *lg_loop_run(void *arg);


/* loomgen_report.c: measurements and the report, text and JSON */

int lg_nginx_rss(pid_t master, uint64_t *kb);
void lg_progress(uint64_t start, lg_snap_t *prev);
void lg_total(lg_total_t *tot);
void lg_report_pubsub(FILE *f, lg_total_t *t, int json);
void lg_report_connections(FILE *f, lg_total_t *t, int json);


/* loomgen_replay.c: the catch-up and snapshot workloads */

int lg_replay_main(void);


/* time and randomness */

static inline uint64_t
lg_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * LG_NS + (uint64_t) ts.tv_nsec;
}


static inline uint64_t
lg_random(lg_loop_t *lp)
{
    /* xorshift64*: masking keys need not be cryptographic here */

    lp->rng ^= lp->rng >> 12;
    lp->rng ^= lp->rng << 25;
    lp->rng ^= lp->rng >> 27;

    return lp->rng * 0x2545F4914F6CDD1DULL;
}


/* numbers */

static inline unsigned
lg_digits(uint64_t v)
{
    unsigned  n;

    for (n = 1; v >= 10; n++) {
        v /= 10;
    }

    return n;
}


/* writes v in exactly n digits (n from lg_digits()) and returns the end */

static inline u_char *
lg_put_u64(u_char *p, uint64_t v, unsigned n)
{
    u_char  *q;

    q = p + n;

    do {
        *--q = (u_char) ('0' + v % 10);
        v /= 10;
    } while (q > p);

    return p + n;
}


static inline const u_char *
lg_get_u64(const u_char *p, const u_char *end, uint64_t *v)
{
    uint64_t  n;

    if (p >= end || *p < '0' || *p > '9') {
        return NULL;
    }

    for (n = 0; p < end && *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (uint64_t) (*p - '0');
    }

    *v = n;

    return p;
}


static inline int
lg_has(const u_char *p, const u_char *end, const char *s, size_t len)
{
    return (size_t) (end - p) >= len && memcmp(p, s, len) == 0;
}


/* output */

static inline void
lg_dirty(lg_loop_t *lp, lg_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        lp->dirty[lp->ndirty++] = c;
    }
}


/*
 * Client frames are masked (RFC 6455, 5.3), with a fresh key each; the
 * payload is XORed eight bytes at a time.
 */

static inline void
lg_mask(u_char *p, size_t len, const u_char key[4])
{
    size_t    i;
    uint64_t  m, v;

    memcpy(&m, key, 4);
    memcpy((u_char *) &m + 4, key, 4);

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&v, p + i, 8);
        v ^= m;
        memcpy(p + i, &v, 8);
    }

    for ( /* void */ ; i < len; i++) {
        p[i] ^= key[i & 3];
    }
}


static inline size_t
lg_frame_header_len(size_t len)
{
    return (len < 126 ? 2 : (len < 65536 ? 4 : 10)) + 4;
}


/* writes a masked frame header, returns where the payload goes */

static inline u_char *
lg_frame_header(lg_loop_t *lp, u_char *p, int op, size_t len,
    u_char key[4])
{
    int       i;
    uint32_t  k;

    *p++ = (u_char) (0x80 | op);

    if (len < 126) {
        *p++ = (u_char) (0x80 | len);

    } else if (len < 65536) {
        *p++ = 0x80 | 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;

    } else {
        *p++ = 0x80 | 127;

        for (i = 7; i >= 0; i--) {
            *p++ = (u_char) ((uint64_t) len >> (8 * i));
        }
    }

    k = (uint32_t) lg_random(lp);
    memcpy(key, &k, 4);
    memcpy(p, key, 4);

    return p + 4;
}


#endif /* _LOOMGEN_H_INCLUDED_ */
