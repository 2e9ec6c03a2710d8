/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_sha1.h>

#define NGX_HTTP_LOOM_SCRIPTS_BODIES
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_int.h"


/*
 * Commands and scripts on the command link.  The scripts keep every change
 * of a topic atomic: a stored value and the delivery that announces it can
 * never disagree, and a publish is checked against the schema version it
 * was validated with (the tag).  A script the server lost is sent again
 * with its text; with loom_redis_wait, a script's answer waits for WAIT.
 */


#define NGX_HTTP_LOOM_WAITS_MIN  64


static void ngx_http_loom_store_reply(void *data, redisReply *reply);
static ngx_int_t ngx_http_loom_store_retry(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call);
static void ngx_http_loom_store_reloaded(void *data, redisReply *reply);
static void ngx_http_loom_store_wait(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call);
static void ngx_http_loom_store_wait_reply(void *data, redisReply *reply);
static void ngx_http_loom_store_unconfirmed(ngx_http_loom_store_call_t *call);


void
ngx_http_loom_store_scripts_init(ngx_http_loom_store_t *st)
{
    u_char      digest[20];
    ngx_uint_t  i;
    ngx_sha1_t  sha1;

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, ngx_http_loom_scripts[i].data,
                        ngx_http_loom_scripts[i].len);
        ngx_sha1_final(digest, &sha1);

        ngx_hex_dump(st->sha[i], digest, 20);
        st->sha[i][40] = '\0';
    }
}




ngx_uint_t
ngx_http_loom_store_load_scripts(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler)
{
    size_t       argvlen[3];
    ngx_uint_t   i, n;
    const char  *argv[3], *reason;

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;

    n = 0;

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        argv[2] = (char *) ngx_http_loom_scripts[i].data;
        argvlen[2] = ngx_http_loom_scripts[i].len;

        if (ngx_http_loom_redis_send(&link->rd, 3, argv, argvlen, handler,
                                     link, 0, &reason)
            == NGX_OK)
        {
            n++;
        }
    }

    return n;
}



ngx_int_t
ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    ngx_http_loom_redis_t  *rd;

    rd = &st->command.rd;

    if (rd->state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    call->store = st;
    call->durable = 0;
    call->unconfirmed = 0;

    return ngx_http_loom_redis_send(rd, argc, argv, argvlen,
                                    ngx_http_loom_store_reply, call, 0,
                                    reason);
}



ngx_int_t
ngx_http_loom_store_script(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int                     i;
    size_t                  lens[16];
    u_char                  nk[NGX_INT_T_LEN];
    ngx_int_t               rc;
    const char             *args[16];
    ngx_http_loom_redis_t  *rd;

    rd = &st->command.rd;

    if (argc + 3 > 16) {
        *reason = "too many script arguments";
        return NGX_ERROR;
    }

    if (rd->state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
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

    call->store = st;
    call->durable = 0;
    call->unconfirmed = 0;

    /* the command is kept until answered: a NOSCRIPT sends it again */

    rc = ngx_http_loom_redis_send(rd, argc + 3, args, lens,
                                  ngx_http_loom_store_reply, call, 1,
                                  reason);

    if (rc == NGX_OK && st->conf->redis_wait && !call->ephemeral) {
        ngx_http_loom_store_wait(st, call);
    }

    return rc;
}



static void
ngx_http_loom_store_reply(void *data, redisReply *reply)
{
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_call_t  *call;

    call = data;
    st = call->store;

    if (reply && reply->type == REDIS_REPLY_ERROR
        && reply->len > 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && ngx_http_loom_store_retry(st, call) == NGX_OK)
    {
        return;
    }

    if (call->durable) {
        /* kept until its WAIT answers, right behind it */
        st->waits[st->waits_head].reply = reply;

        if (reply) {
            st->command.rd.keep_reply = 1;
        }

        return;
    }

    if (call->unconfirmed && reply && reply->type != REDIS_REPLY_ERROR) {
        ngx_http_loom_store_unconfirmed(call);
        return;
    }

    call->handler(call, reply);
}


/*
 * The server lost its scripts (SCRIPT FLUSH, a restart without them): the
 * command is sent again once as EVAL with the script's text, and the
 * scripts are loaded again for the commands after it.
 */

static ngx_int_t
ngx_http_loom_store_retry(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call)
{
    u_char                     *p, *start, *rest, *last, *cmd, *q;
    size_t                      len;
    ngx_uint_t                  i;
    const char                 *reason;
    ngx_str_t                  *body;
    ngx_http_loom_redis_t      *rd;
    ngx_http_loom_redis_cmd_t  *current;

    rd = &st->command.rd;
    current = ngx_http_loom_redis_current(rd);

    if (current == NULL || current->command == NULL) {
        return NGX_DECLINED;
    }

    /* "*<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n" then the rest */

    start = (u_char *) current->command;
    last = start + current->len;

    p = ngx_strlchr(start, last, '\n');

    if (p == NULL || last - p < 1 + 18 + 42
        || ngx_strncmp(p + 1, "$7\r\nEVALSHA\r\n$40\r\n", 18) != 0)
    {
        return NGX_DECLINED;
    }

    p++;

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        if (ngx_strncmp(p + 18, st->sha[i], 40) == 0) {
            break;
        }
    }

    if (i == NGX_HTTP_LOOM_SCRIPTS) {
        return NGX_DECLINED;
    }

    body = &ngx_http_loom_scripts[i];
    rest = p + 18 + 42;

    len = (p - start) + sizeof("$4\r\nEVAL\r\n$\r\n\r\n") - 1
          + NGX_SIZE_T_LEN + body->len + (last - rest);

    cmd = ngx_alloc(len, &rd->log);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    q = ngx_cpymem(cmd, start, p - start);
    q = ngx_sprintf(q, "$4\r\nEVAL\r\n$%uz\r\n", body->len);
    q = ngx_cpymem(q, body->data, body->len);
    q = ngx_cpymem(q, "\r\n", 2);
    q = ngx_cpymem(q, rest, last - rest);

    ngx_log_error(NGX_LOG_WARN, &rd->log, 0,
                  "loom: scripts missing on the server, sending again");

    if (ngx_http_loom_redis_send_formatted(rd, (char *) cmd, q - cmd,
                                           ngx_http_loom_store_reply, call,
                                           0, &reason)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (call->durable) {
        /* the WAIT behind the failed attempt answers nothing now */
        st->waits[st->waits_head].call = NULL;
        ngx_http_loom_store_wait(st, call);
    }

    (void) ngx_http_loom_store_load_scripts(&st->command,
                                            ngx_http_loom_store_reloaded);

    return NGX_OK;
}



static void
ngx_http_loom_store_reloaded(void *data, redisReply *reply)
{
    ngx_http_loom_store_link_t  *link;

    link = data;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: SCRIPT LOAD failed: %*s",
                      (size_t) reply->len, reply->str);
    }
}



/*
 * loom_redis_wait N timeout: WAIT goes right behind each script, so its
 * answer is the next one after the script's; the ring keeps the pairs.
 */

static void
ngx_http_loom_store_wait(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call)
{
    u_char                      n[NGX_INT_T_LEN], t[NGX_INT_T_LEN];
    size_t                      argvlen[3];
    ngx_uint_t                  i, size;
    const char                 *argv[3], *reason;
    ngx_http_loom_store_wait_t *waits, *wait;

    if (st->nwaits == st->waits_size) {
        size = st->waits_size ? 2 * st->waits_size : NGX_HTTP_LOOM_WAITS_MIN;

        waits = ngx_alloc(size * sizeof(ngx_http_loom_store_wait_t),
                          &st->command.rd.log);
        if (waits == NULL) {
            call->unconfirmed = 1;
            return;
        }

        for (i = 0; i < st->nwaits; i++) {
            waits[i] = st->waits[(st->waits_head + i)
                                 & (st->waits_size - 1)];
        }

        if (st->waits) {
            ngx_free(st->waits);
        }

        st->waits = waits;
        st->waits_size = size;
        st->waits_head = 0;
    }

    argv[0] = "WAIT";
    argvlen[0] = 4;
    argv[1] = (char *) n;
    argvlen[1] = ngx_sprintf(n, "%ui", st->conf->redis_wait) - n;
    argv[2] = (char *) t;
    argvlen[2] = ngx_sprintf(t, "%M", st->conf->redis_wait_timeout) - t;

    if (ngx_http_loom_redis_send(&st->command.rd, 3, argv, argvlen,
                                 ngx_http_loom_store_wait_reply, st, 0,
                                 &reason)
        != NGX_OK)
    {
        /* the script went out: its answer cannot be confirmed */
        call->unconfirmed = 1;
        return;
    }

    wait = &st->waits[(st->waits_head + st->nwaits) & (st->waits_size - 1)];
    wait->call = call;
    wait->reply = NULL;
    st->nwaits++;

    call->durable = 1;
}


static void
ngx_http_loom_store_wait_reply(void *data, redisReply *reply)
{
    redisReply                  *script;
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_wait_t   wait;
    ngx_http_loom_store_call_t  *call;

    st = data;

    if (st->nwaits == 0) {
        return;
    }

    wait = st->waits[st->waits_head];
    st->waits_head = (st->waits_head + 1) & (st->waits_size - 1);
    st->nwaits--;

    call = wait.call;
    script = wait.reply;

    if (call == NULL) {
        /* a script sent again: its own WAIT follows */
        if (script) {
            freeReplyObject(script);
        }

        return;
    }

    if (reply == NULL || script == NULL) {
        call->handler(call, NULL);

    } else if (script->type == REDIS_REPLY_ERROR
               || (reply->type == REDIS_REPLY_INTEGER
                   && reply->integer >= (long long) st->conf->redis_wait))
    {
        call->handler(call, script);

    } else {
        ngx_http_loom_store_unconfirmed(call);
    }

    if (script) {
        freeReplyObject(script);
    }
}


/* the script ran on the master, but not enough replicas confirmed it */

static void
ngx_http_loom_store_unconfirmed(ngx_http_loom_store_call_t *call)
{
    u_char                  text[128];
    redisReply              fail;
    ngx_http_loom_store_t  *st;

    st = call->store;

    ngx_memzero(&fail, sizeof(redisReply));
    fail.type = REDIS_REPLY_ERROR;
    fail.str = (char *) text;
    fail.len = ngx_snprintf(text, sizeof(text),
                            "written on the master, not confirmed by %ui "
                            "replicas within %M ms",
                            st->conf->redis_wait,
                            st->conf->redis_wait_timeout)
               - text;

    call->handler(call, &fail);
}


void
ngx_http_loom_store_waits_free(ngx_http_loom_store_t *st)
{
    while (st->nwaits) {
        if (st->waits[st->waits_head].reply) {
            freeReplyObject(st->waits[st->waits_head].reply);
        }

        st->waits_head = (st->waits_head + 1) & (st->waits_size - 1);
        st->nwaits--;
    }

    if (st->waits) {
        ngx_free(st->waits);
        st->waits = NULL;
    }
}
