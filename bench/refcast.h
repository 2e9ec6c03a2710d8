/*
 * Copyright (C) Data Loom
 */


#ifndef _REFCAST_H_INCLUDED_
#define _REFCAST_H_INCLUDED_


#define _GNU_SOURCE

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define RC_RBUF_SIZE         (256 * 1024)        /* read buffer per worker */
#define RC_MAX_MESSAGE       (64 * 1024)
#define RC_MAX_HTTP          8192                /* upgrade request */
#define RC_MAX_QUEUED        (16 * 1024 * 1024)  /* output per connection */
#define RC_MAX_IOV           1024
#define RC_SENDER_LEN        36                  /* a UUID, as the broker's */

#define RC_OP_TEXT           0x1
#define RC_OP_CLOSE          0x8
#define RC_OP_PING           0x9
#define RC_OP_PONG           0xa

#define rc_min(a, b)         ((a) < (b) ? (a) : (b))
#define rc_str(s)            (s), (sizeof(s) - 1)


/* a frame (or a record for a sibling), shared by every queue it is in */
typedef struct {
    uint32_t             refs;
    uint32_t             len;
    u_char               data[];
} rc_buf_t;


typedef struct rc_conn_s   rc_conn_t;
typedef struct rc_topic_s  rc_topic_t;

struct rc_topic_s {
    rc_topic_t          *next;           /* in the hash chain */
    rc_conn_t          **subs;
    uint32_t             nsubs;
    uint32_t             cap;
    uint32_t             nv2;            /* subscribers with revisions */
    uint64_t             rev;            /* the last one handed on here */
    u_char              *value;          /* its delivery, once kept */
    size_t               vlen;
    size_t               vcap;
    uint8_t              keep;           /* a snapshot was asked for */
    uint32_t             len;
    char                 name[];
};


enum {
    RC_K_LISTEN = 0,
    RC_K_CLIENT,
    RC_K_PEER,                           /* a link to a sibling worker */
};

enum {
    RC_S_HANDSHAKE = 0,
    RC_S_OPEN,
    RC_S_CLOSING,                        /* a close frame went out */
};


struct rc_conn_s {
    int                  fd;
    uint8_t              kind;
    uint8_t              state;
    uint8_t              dirty;          /* on the flush list */
    uint8_t              dead;           /* closed, freed after the pass */
    uint8_t              close_after;    /* close once the queue is out */
    uint8_t              want_out;       /* EPOLLOUT registered */
    uint8_t              v2;             /* dataloom.v2 was offered */

    /* output: buffers written by one writev() per event-loop pass */
    rc_buf_t           **q;
    uint32_t             qhead;
    uint32_t             qlen;
    uint32_t             qcap;
    uint32_t             qoff;           /* written of q[qhead] */
    size_t               qbytes;

    /* a partial frame (or request) between two reads */
    u_char              *carry;
    uint32_t             clen;
    uint32_t             ccap;

    rc_topic_t         **topics;         /* subscribed to */
    uint32_t             ntopics;
    uint32_t             tcap;

    rc_conn_t           *next_dead;

    char                 sender[RC_SENDER_LEN + 1];
};


/* what a worker counts; printed when it exits */
typedef struct {
    uint64_t             accepted;
    uint64_t             subscribes;
    uint64_t             publishes;      /* from this worker's clients */
    uint64_t             relayed;        /* from sibling workers */
    uint64_t             deliveries;     /* frames queued to subscribers */
    uint64_t             frames;         /* every frame queued to clients */
    uint64_t             writes;         /* writev() calls */
    uint64_t             slow;           /* closed: too much queued */
} rc_stats_t;


/* refcast.c: a worker's event loop, connections and output */

extern rc_stats_t        rc_stats;
extern rc_conn_t       **rc_peers;
extern uint32_t          rc_npeers;
extern int               rc_worker;
extern uint64_t          rc_rng;
extern volatile sig_atomic_t  rc_quit;

void rc_worker_run(int lfd, int *links, uint32_t nlinks);
void rc_on_signal(int signo);

rc_buf_t *rc_buf_alloc(size_t len);
void rc_enqueue(rc_conn_t *c, rc_buf_t *b);
void rc_send_raw(rc_conn_t *c, const u_char *data, size_t len);
void rc_close(rc_conn_t *c);


/* refcast_proto.c: the WebSocket server side and the messages */

size_t rc_on_handshake(rc_conn_t *c, const u_char *b, size_t n);
size_t rc_on_frames(rc_conn_t *c, u_char *b, size_t n);
size_t rc_on_records(rc_conn_t *c, const u_char *b, size_t n);
void rc_unsubscribe_all(rc_conn_t *c);


#endif /* _REFCAST_H_INCLUDED_ */
