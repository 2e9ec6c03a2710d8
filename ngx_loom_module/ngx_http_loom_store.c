/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_redis.h"
#include "ngx_http_loom_shm.h"
#include "ngx_http_loom_topic.h"


#define NGX_HTTP_LOOM_BACKOFF_MIN  100
#define NGX_HTTP_LOOM_BACKOFF_MAX  5000


typedef struct {
    ngx_http_loom_store_t      *store;
    redisAsyncContext          *ac;
    ngx_uint_t                  state;
    ngx_uint_t                  handshake;     /* replies still due */
    ngx_uint_t                  pending;       /* command replies due */
    ngx_msec_t                  backoff;
    ngx_event_t                 timer;
    ngx_log_t                   log;
    const char                 *name;
    unsigned                    subscriber:1;
    unsigned                    dropping:1;
    unsigned                    failed:1;      /* last attempt failed */
} ngx_http_loom_link_t;


struct ngx_http_loom_store_s {
    ngx_http_loom_worker_t     *worker;
    ngx_http_loom_main_conf_t  *conf;

    ngx_http_loom_link_t        command;
    ngx_http_loom_link_t        subscriber;

    ngx_str_t                   index;         /* Ptopics */
    ngx_str_t                   control;       /* Pctl */

    u_char                      sha[NGX_HTTP_LOOM_SCRIPTS][41];

    unsigned                    exiting:1;
    unsigned                    reloading:1;   /* SCRIPT LOAD after NOSCRIPT */
};


static void ngx_http_loom_store_connect(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_loom_store_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_loom_store_handshake(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_handshake_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_loom_store_ready(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_down(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_drop(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_timer(ngx_event_t *ev);
static void ngx_http_loom_store_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_loom_store_message(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_loom_store_load_scripts(ngx_http_loom_link_t *link);
static void ngx_http_loom_store_set_state(ngx_http_loom_link_t *link,
    ngx_uint_t state);
static u_char *ngx_http_loom_store_log_error(ngx_log_t *log, u_char *buf,
    size_t len);


/*
 * The scripts keep every change of a topic atomic: a stored value and the
 * delivery that announces it can never disagree, and a publish is checked
 * against the schema version it was validated with (the tag).
 */

static ngx_str_t  ngx_http_loom_scripts[NGX_HTTP_LOOM_SCRIPTS] = {

    /* register: KEYS topic, index; ARGV name, schema, incarnation */
    ngx_string(
    "local s = redis.call('HGET', KEYS[1], 'schema')\n"
    "if s then return {0, s} end\n"
    "redis.call('HSET', KEYS[1], 'sv', 0, 'tag', ARGV[3] .. ':0',\n"
    "           'schema', ARGV[2], 's:0', ARGV[2], 'seq', 0)\n"
    "redis.call('HSET', KEYS[2], ARGV[1],\n"
    "           '{\"version\":0,\"schema\":' .. ARGV[2] .. '}')\n"
    "return {1}\n"),

    /* update: KEYS topic, index; ARGV name, schema, control channel */
    ngx_string(
    "local tag = redis.call('HGET', KEYS[1], 'tag')\n"
    "if not tag then return false end\n"
    "local v = redis.call('HINCRBY', KEYS[1], 'sv', 1)\n"
    "tag = string.match(tag, '^[^:]*') .. ':' .. v\n"
    "redis.call('HSET', KEYS[1], 'tag', tag, 'schema', ARGV[2],\n"
    "           's:' .. v, ARGV[2])\n"
    "redis.call('HSET', KEYS[2], ARGV[1],\n"
    "           '{\"version\":' .. v .. ',\"schema\":' .. ARGV[2] .. '}')\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[1])\n"
    "return v\n"),

    /*
     * unregister: KEYS topic, index; ARGV name, channel, control channel;
     * subscribers hear which registration ended
     */
    ngx_string(
    "local tag = redis.call('HGET', KEYS[1], 'tag')\n"
    "if not tag then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[2], 'U ' .. string.match(tag, '^[^:]*'))\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[1])\n"
    "return 1\n"),

    /*
     * publish: KEYS topic; ARGV tag, store ("1" or "0"), delivery,
     * offset and length of the data in the delivery, channel
     */
    ngx_string(
    "local tag = redis.call('HGET', KEYS[1], 'tag')\n"
    "if not tag then return false end\n"
    "if tag ~= ARGV[1] then\n"
    "  return {tag, redis.call('HGET', KEYS[1], 'schema')}\n"
    "end\n"
    "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)\n"
    "if ARGV[2] == '1' then\n"
    "  local o = tonumber(ARGV[4])\n"
    "  redis.call('HSET', KEYS[1], 'value',\n"
    "             string.sub(ARGV[3], o, o + tonumber(ARGV[5]) - 1))\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[6], seq .. ' ' .. ARGV[3])\n"
    "return seq\n")
};


ngx_int_t
ngx_http_loom_store_init(ngx_http_loom_worker_t *w)
{
    u_char                 digest[20];
    ngx_str_t             *prefix;
    ngx_uint_t             i;
    ngx_sha1_t             sha1;
    ngx_http_loom_link_t  *link;
    ngx_http_loom_store_t *st;

    st = ngx_pcalloc(w->cycle->pool, sizeof(ngx_http_loom_store_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    st->worker = w;
    st->conf = w->conf;
    w->store = st;

    prefix = &st->conf->redis_prefix;

    st->index.len = prefix->len + sizeof("topics") - 1;
    st->index.data = ngx_pnalloc(w->cycle->pool, st->index.len);
    st->control.len = prefix->len + sizeof("ctl") - 1;
    st->control.data = ngx_pnalloc(w->cycle->pool, st->control.len);

    if (st->index.data == NULL || st->control.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(st->index.data, prefix->data, prefix->len),
               "topics", sizeof("topics") - 1);
    ngx_memcpy(ngx_cpymem(st->control.data, prefix->data, prefix->len),
               "ctl", sizeof("ctl") - 1);

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, ngx_http_loom_scripts[i].data,
                        ngx_http_loom_scripts[i].len);
        ngx_sha1_final(digest, &sha1);

        ngx_hex_dump(st->sha[i], digest, 20);
        st->sha[i][40] = '\0';
    }

    for (i = 0; i < 2; i++) {
        link = (i == 0) ? &st->command : &st->subscriber;

        link->store = st;
        link->subscriber = (i == 1);
        link->name = link->subscriber ? "subscriber" : "command";
        link->backoff = NGX_HTTP_LOOM_BACKOFF_MIN;

        link->log = *w->log;
        link->log.handler = ngx_http_loom_store_log_error;
        link->log.data = link;
        link->log.action = NULL;

        link->timer.handler = ngx_http_loom_store_timer;
        link->timer.data = link;
        link->timer.log = &link->log;
        link->timer.cancelable = 1;

        ngx_http_loom_store_connect(link);
    }

    return NGX_OK;
}


void
ngx_http_loom_store_exit(ngx_http_loom_worker_t *w)
{
    ngx_uint_t              i;
    ngx_http_loom_link_t   *link;
    ngx_http_loom_store_t  *st;

    st = w->store;

    if (st == NULL) {
        return;
    }

    st->exiting = 1;

    for (i = 0; i < 2; i++) {
        link = (i == 0) ? &st->command : &st->subscriber;

        if (link->timer.timer_set) {
            ngx_del_timer(&link->timer);
        }

        ngx_http_loom_store_drop(link);
    }

    w->store = NULL;
}


static u_char *
ngx_http_loom_store_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    ngx_http_loom_link_t  *link;

    link = log->data;

    return ngx_snprintf(buf, len, " while talking to redis \"%V\" (%s link)",
                        &link->store->conf->redis, link->name);
}


static void
ngx_http_loom_store_connect(ngx_http_loom_link_t *link)
{
    redisAsyncContext          *ac;
    ngx_http_loom_main_conf_t  *conf;

    conf = link->store->conf;

    if (conf->redis_unix) {
        ac = redisAsyncConnectUnix((char *) conf->redis_unix);

    } else {
        ac = redisAsyncConnect((char *) conf->redis_host, conf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &link->log, 0,
                      "loom: cannot allocate a redis context");
        ngx_http_loom_store_down(link);
        return;
    }

    if (ac->err) {
        if (!link->failed) {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "loom: cannot connect: %s", ac->errstr);
        }

        redisAsyncFree(ac);
        link->failed = 1;
        ngx_http_loom_store_down(link);
        return;
    }

    ac->data = link;

    if (ngx_http_loom_redis_attach(ac, &link->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, &link->log, 0,
                      "loom: cannot attach the redis socket");
        redisAsyncFree(ac);
        ngx_http_loom_store_down(link);
        return;
    }

    redisAsyncSetConnectCallback(ac, ngx_http_loom_store_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_loom_store_disconnected);

    link->ac = ac;
    link->pending = 0;
    ngx_http_loom_store_set_state(link, NGX_HTTP_LOOM_LINK_CONNECTING);

    ngx_add_timer(&link->timer, conf->redis_connect_timeout);
}


static void
ngx_http_loom_store_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_loom_link_t  *link;

    link = ac->data;

    if (status != REDIS_OK) {

        /* hiredis frees the context when this returns */

        if (!link->failed) {
            ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                          "loom: cannot connect: %s", ac->errstr);
        }

        link->failed = 1;
        link->ac = NULL;
        ngx_http_loom_store_down(link);
        return;
    }

    ngx_http_loom_store_handshake(link);
}


static void
ngx_http_loom_store_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_loom_link_t  *link;

    link = ac->data;

    if (!link->dropping && !link->store->exiting) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "loom: connection lost: %s",
                      ac->err ? ac->errstr : "closed by server");
    }

    link->ac = NULL;
    link->failed = 1;
    ngx_http_loom_store_down(link);
}


static void
ngx_http_loom_store_handshake(ngx_http_loom_link_t *link)
{
    int                         argc;
    size_t                      argvlen[3];
    const char                 *argv[3];
    u_char                      db[NGX_INT_T_LEN];
    ngx_http_loom_store_t      *st;
    ngx_http_loom_main_conf_t  *conf;

    st = link->store;
    conf = st->conf;

    ngx_http_loom_store_set_state(link, NGX_HTTP_LOOM_LINK_HANDSHAKE);
    link->handshake = 0;

    if (conf->redis_password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (conf->redis_user.len) {
            argv[argc] = (char *) conf->redis_user.data;
            argvlen[argc++] = conf->redis_user.len;
        }

        argv[argc] = (char *) conf->redis_password.data;
        argvlen[argc++] = conf->redis_password.len;

        if (redisAsyncCommandArgv(link->ac,
                                  ngx_http_loom_store_handshake_reply,
                                  (void *) "AUTH", argc, argv, argvlen)
            == REDIS_OK)
        {
            link->handshake++;
        }
    }

    if (link->subscriber) {

        /*
         * The control channel stays subscribed for the life of the link,
         * so the link never leaves the subscribed state while topics come
         * and go (hiredis 0.14 asserts on replies in between).  Its
         * confirmation ends the handshake.
         */

        if (redisAsyncCommand(link->ac, ngx_http_loom_store_message, link,
                              "SUBSCRIBE %b", st->control.data,
                              st->control.len)
            == REDIS_OK)
        {
            link->handshake++;
        }

    } else {

        if (conf->redis_db) {
            argv[0] = "SELECT";
            argvlen[0] = 6;
            argv[1] = (char *) db;
            argvlen[1] = ngx_sprintf(db, "%i", conf->redis_db) - db;

            if (redisAsyncCommandArgv(link->ac,
                                      ngx_http_loom_store_handshake_reply,
                                      (void *) "SELECT", 2, argv, argvlen)
                == REDIS_OK)
            {
                link->handshake++;
            }
        }

        ngx_http_loom_store_load_scripts(link);
    }

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    ngx_add_timer(&link->timer, conf->redis_timeout);
}


static void
ngx_http_loom_store_load_scripts(ngx_http_loom_link_t *link)
{
    size_t      argvlen[3];
    ngx_uint_t  i;
    const char *argv[3];

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        argv[2] = (char *) ngx_http_loom_scripts[i].data;
        argvlen[2] = ngx_http_loom_scripts[i].len;

        if (redisAsyncCommandArgv(link->ac,
                                  ngx_http_loom_store_handshake_reply,
                                  (void *) "SCRIPT LOAD", 3, argv, argvlen)
            == REDIS_OK
            && link->state == NGX_HTTP_LOOM_LINK_HANDSHAKE)
        {
            link->handshake++;
        }
    }
}


static void
ngx_http_loom_store_handshake_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply            *reply;
    ngx_http_loom_link_t  *link;

    reply = r;
    link = ac->data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &link->log, 0,
                      "loom: %s failed: %*s", (char *) privdata,
                      (size_t) reply->len, reply->str);

        if (link->state == NGX_HTTP_LOOM_LINK_READY) {
            /* a script reload after NOSCRIPT: the link itself is fine */
            link->store->reloading = 0;
            return;
        }

        link->failed = 1;
        link->dropping = 1;
        redisAsyncDisconnect(ac);
        return;
    }

    if (link->state == NGX_HTTP_LOOM_LINK_READY) {
        link->store->reloading = 0;
        return;
    }

    if (--link->handshake == 0) {
        ngx_http_loom_store_ready(link);
    }
}


static void
ngx_http_loom_store_ready(ngx_http_loom_link_t *link)
{
    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->failed) {
        ngx_log_error(NGX_LOG_NOTICE, &link->log, 0, "loom: connected");
    }

    link->failed = 0;
    link->dropping = 0;
    link->backoff = NGX_HTTP_LOOM_BACKOFF_MIN;

    ngx_http_loom_store_set_state(link, NGX_HTTP_LOOM_LINK_READY);

    if (link->subscriber) {
        ngx_http_loom_topic_resubscribe(link->store->worker);
    }
}


/*
 * The link is gone (or never came up): tell the topics, then try again
 * after a delay that doubles up to a limit, with some jitter so that the
 * workers of a node do not all knock at once.
 */

static void
ngx_http_loom_store_down(ngx_http_loom_link_t *link)
{
    ngx_uint_t              prev;
    ngx_msec_t              delay;
    ngx_http_loom_store_t  *st;

    st = link->store;
    prev = link->state;

    ngx_http_loom_store_set_state(link, NGX_HTTP_LOOM_LINK_DOWN);

    link->pending = 0;

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->subscriber && prev != NGX_HTTP_LOOM_LINK_DOWN) {
        ngx_http_loom_topic_subscriber_lost(st->worker);
    }

    if (st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    delay = link->backoff + (ngx_random() % (link->backoff / 2 + 1));
    link->backoff = ngx_min(link->backoff * 2, NGX_HTTP_LOOM_BACKOFF_MAX);

    ngx_add_timer(&link->timer, delay);
}


static void
ngx_http_loom_store_drop(ngx_http_loom_link_t *link)
{
    redisAsyncContext  *ac;

    ac = link->ac;

    if (ac == NULL) {
        return;
    }

    /*
     * pending callbacks run with a NULL reply, then the disconnect
     * callback runs if the link was connected
     */

    link->dropping = 1;
    redisAsyncFree(ac);

    if (link->ac != NULL) {
        /* it was still connecting: no callback told us */
        link->ac = NULL;
        ngx_http_loom_store_down(link);
    }
}


static void
ngx_http_loom_store_timer(ngx_event_t *ev)
{
    ngx_http_loom_link_t  *link;

    link = ev->data;

    switch (link->state) {

    case NGX_HTTP_LOOM_LINK_DOWN:
        if (link->store->worker->stats) {
            link->store->worker->stats->redis_reconnects++;
        }

        ngx_http_loom_store_connect(link);
        return;

    case NGX_HTTP_LOOM_LINK_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, &link->log, NGX_ETIMEDOUT,
                      "loom: connect timed out");
        break;

    default:
        ngx_log_error(NGX_LOG_ERR, &link->log, NGX_ETIMEDOUT,
                      "loom: no reply for %M ms, %ui commands waiting",
                      link->store->conf->redis_timeout,
                      link->pending + link->handshake);
        break;
    }

    link->failed = 1;
    ngx_http_loom_store_drop(link);
}


static void
ngx_http_loom_store_set_state(ngx_http_loom_link_t *link, ngx_uint_t state)
{
    ngx_http_loom_stats_t  *stats;

    link->state = state;

    stats = link->store->worker->stats;

    if (stats == NULL) {
        return;
    }

    if (link->subscriber) {
        stats->redis_subscriber = state;

    } else {
        stats->redis_command = state;
    }
}


ngx_int_t
ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    ngx_http_loom_link_t  *link;

    link = &st->command;

    if (link->state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    if (link->pending >= st->conf->redis_max_pending) {
        *reason = "too many redis commands in flight";
        return NGX_BUSY;
    }

    if (redisAsyncCommandArgv(link->ac, ngx_http_loom_store_reply, call,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        *reason = "redis connection is closing";
        return NGX_DECLINED;
    }

    if (link->pending++ == 0) {
        ngx_add_timer(&link->timer, st->conf->redis_timeout);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int          i;
    size_t       lens[16];
    u_char       nk[NGX_INT_T_LEN];
    const char  *args[16];

    if (argc + 3 > 16) {
        *reason = "too many script arguments";
        return NGX_ERROR;
    }

    args[0] = "EVALSHA";
    lens[0] = 7;
    args[1] = (char *) st->sha[script];
    lens[1] = 40;
    args[2] = (char *) nk;
    lens[2] = ngx_sprintf(nk, "%d", nkeys) - nk;

    for (i = 0; i < argc; i++) {
        args[i + 3] = argv[i];
        lens[i + 3] = argvlen[i];
    }

    return ngx_http_loom_store_command(st, call, argc + 3, args, lens,
                                       reason);
}


static void
ngx_http_loom_store_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                  *reply;
    ngx_http_loom_link_t        *link;
    ngx_http_loom_store_call_t  *call;

    reply = r;
    call = privdata;
    link = ac->data;

    if (link->pending) {
        link->pending--;
    }

    if (link->state == NGX_HTTP_LOOM_LINK_READY) {

        /* progress: the timer measures silence, not one command */

        if (link->pending) {
            ngx_add_timer(&link->timer, link->store->conf->redis_timeout);

        } else if (link->timer.timer_set) {
            ngx_del_timer(&link->timer);
        }
    }

    if (reply && reply->type == REDIS_REPLY_ERROR
        && reply->len > 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && !link->store->reloading && link->ac)
    {
        /* SCRIPT FLUSH on the server: this command fails, the next work */

        ngx_log_error(NGX_LOG_WARN, &link->log, 0,
                      "loom: scripts missing on the server, loading them");

        link->store->reloading = 1;
        ngx_http_loom_store_load_scripts(link);
    }

    call->handler(call, reply);
}


static void
ngx_http_loom_store_message(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply             *reply, *kind, *channel, *payload;
    ngx_str_t               ch, data;
    ngx_http_loom_link_t   *link;
    ngx_http_loom_store_t  *st;

    reply = r;
    link = privdata;
    st = link->store;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 3)
    {
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING
        || channel->type != REDIS_REPLY_STRING)
    {
        return;
    }

    ch.data = (u_char *) channel->str;
    ch.len = channel->len;

    if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0) {

        if (payload->type != REDIS_REPLY_STRING) {
            return;
        }

        data.data = (u_char *) payload->str;
        data.len = payload->len;

        if (ch.len == st->control.len
            && ngx_strncmp(ch.data, st->control.data, ch.len) == 0)
        {
            ngx_http_loom_topic_invalidate(st->worker, &data);
            return;
        }

        ngx_http_loom_topic_message(st->worker, &ch, &data);
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {

        if (ch.len == st->control.len
            && ngx_strncmp(ch.data, st->control.data, ch.len) == 0)
        {
            if (link->state == NGX_HTTP_LOOM_LINK_HANDSHAKE
                && --link->handshake == 0)
            {
                ngx_http_loom_store_ready(link);
            }

            return;
        }

        ngx_http_loom_topic_subscribed(st->worker, &ch);
    }
}


ngx_int_t
ngx_http_loom_store_subscribe(ngx_http_loom_store_t *st, ngx_str_t *channel)
{
    ngx_http_loom_link_t  *link;

    link = &st->subscriber;

    if (link->state != NGX_HTTP_LOOM_LINK_READY) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommand(link->ac, ngx_http_loom_store_message, link,
                          "SUBSCRIBE %b", channel->data, channel->len)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_http_loom_store_unsubscribe(ngx_http_loom_store_t *st,
    ngx_str_t *channel)
{
    ngx_http_loom_link_t  *link;

    link = &st->subscriber;

    if (link->state != NGX_HTTP_LOOM_LINK_READY) {
        return;
    }

    (void) redisAsyncCommand(link->ac, NULL, NULL, "UNSUBSCRIBE %b",
                             channel->data, channel->len);
}


ngx_str_t *
ngx_http_loom_store_prefix(ngx_http_loom_store_t *st)
{
    return &st->conf->redis_prefix;
}


ngx_str_t *
ngx_http_loom_store_index(ngx_http_loom_store_t *st)
{
    return &st->index;
}


ngx_str_t *
ngx_http_loom_store_control(ngx_http_loom_store_t *st)
{
    return &st->control;
}
