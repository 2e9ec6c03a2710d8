/*
 * Copyright (C) Data Loom
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_sha1.h>

#define NGX_HTTP_LOOM_SCRIPTS_BODIES
#include "ngx_http_loom_store.h"
#include "ngx_http_loom_store_int.h"
#include "ngx_http_loom_cluster.h"


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
static void ngx_http_loom_store_wait_reply(void *data, redisReply *reply);
static void ngx_http_loom_store_unconfirmed(ngx_http_loom_store_call_t *call);


/*
 * In a cluster, the deliveries go out on the topic's shard: the line
 * "local publish = 'PUBLISH'" of a script becomes 'SPUBLISH'
 */

ngx_int_t
ngx_http_loom_store_scripts_init(ngx_http_loom_store_t *st,
    ngx_pool_t *pool)
{
    u_char      digest[20], *p, *q;
    ngx_str_t  *text;
    ngx_uint_t  i;
    ngx_sha1_t  sha1;

    static ngx_str_t  plain = ngx_string("local publish = 'PUBLISH'");

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        text = &st->scripts[i];
        *text = ngx_http_loom_scripts[i];

        p = st->cluster ? ngx_strlcasestrn(text->data,
                                           text->data + text->len,
                                           plain.data, plain.len - 1)
                        : NULL;

        if (p) {
            q = ngx_pnalloc(pool, text->len + 1);
            if (q == NULL) {
                return NGX_ERROR;
            }

            p = ngx_cpymem(q, text->data, p - text->data
                                          + sizeof("local publish = '") - 1);
            *p++ = 'S';
            ngx_memcpy(p, text->data + (p - 1 - q),
                       text->len - (p - 1 - q));

            text->data = q;
            text->len++;
        }

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, text->data, text->len);
        ngx_sha1_final(digest, &sha1);

        ngx_hex_dump(st->sha[i], digest, 20);
        st->sha[i][40] = '\0';
    }

    return NGX_OK;
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
        argv[2] = (char *) link->store->scripts[i].data;
        argvlen[2] = link->store->scripts[i].len;

        if (ngx_http_loom_redis_send(&link->rd, 3, argv, argvlen, handler,
                                     link, 0, &reason)
            == NGX_OK)
        {
            n++;
        }
    }

    return n;
}



/* AUTH [user] password, as both links start with it */

ngx_int_t
ngx_http_loom_store_auth(ngx_http_loom_store_link_t *link,
    ngx_http_loom_redis_reply_pt handler)
{
    int                         argc;
    size_t                      argvlen[3];
    const char                 *argv[3], *reason;
    ngx_http_loom_main_conf_t  *conf;

    conf = link->store->conf;

    if (conf->redis_password.len == 0) {
        return NGX_OK;
    }

    argc = 0;
    argv[argc] = "AUTH";
    argvlen[argc++] = 4;

    if (conf->redis_user.len) {
        argv[argc] = (char *) conf->redis_user.data;
        argvlen[argc++] = conf->redis_user.len;
    }

    argv[argc] = (char *) conf->redis_password.data;
    argvlen[argc++] = conf->redis_password.len;

    if (ngx_http_loom_redis_send(&link->rd, argc, argv, argvlen, handler,
                                 link, 0, &reason)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    link->handshake++;

    return NGX_OK;
}


void
ngx_http_loom_store_handshake_reply(void *data, redisReply *reply)
{
    ngx_http_loom_store_link_t  *link;

    link = data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &link->rd.log, 0,
                      "loom: redis refused the handshake: %*s",
                      (size_t) reply->len, reply->str);
        ngx_http_loom_redis_fail(&link->rd, NULL);
        return;
    }

    if (--link->handshake == 0) {
        ngx_http_loom_redis_ready(&link->rd);
    }
}


ngx_int_t
ngx_http_loom_store_command(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, int argc, const char **argv,
    const size_t *argvlen, const char **reason)
{
    ngx_http_loom_redis_t  *rd;

    /* a group of script calls asked for before this goes first */

    if (st->batches) {
        st->flush(st);
    }

    call->store = st;
    call->durable = 0;
    call->unconfirmed = 0;
    call->unsent = 0;

    if (st->cluster) {
        /* to the master of the key's slot */
        return st->cluster_send(st, call,
                   argc > 1 ? ngx_http_loom_cluster_slot((u_char *) argv[1],
                                                         argvlen[1])
                            : 0,
                   0, argc, argv, argvlen, reason);
    }

    rd = &st->command.rd;

    if (rd->state != NGX_HTTP_LOOM_LINK_READY) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

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
    /* a group of script calls asked for before this goes first */

    if (st->batches) {
        st->flush(st);
    }

    return ngx_http_loom_store_script_send(st, call, script, nkeys, argc,
                                           argv, argvlen, reason);
}


ngx_int_t
ngx_http_loom_store_script_send(ngx_http_loom_store_t *st,
    ngx_http_loom_store_call_t *call, ngx_uint_t script, int nkeys,
    int argc, const char **argv, const size_t *argvlen,
    const char **reason)
{
    int                     i;
    size_t                  lens_buf[16], *lens;
    u_char                  nk[NGX_INT_T_LEN];
    ngx_int_t               rc;
    const char             *args_buf[16], **args;
    ngx_http_loom_redis_t  *rd;

    rd = &st->command.rd;

    if (rd->state != NGX_HTTP_LOOM_LINK_READY && st->cluster == NULL) {
        *reason = "not connected to redis";
        return NGX_DECLINED;
    }

    args = args_buf;
    lens = lens_buf;

    if (argc + 3 > 16) {
        /* a group commit: as many arguments as its calls have */

        args = ngx_alloc((argc + 3) * (sizeof(char *) + sizeof(size_t)),
                         ngx_cycle->log);
        if (args == NULL) {
            *reason = "out of memory";
            return NGX_ERROR;
        }

        lens = (size_t *) (args + argc + 3);
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
    call->unsent = 0;

    if (st->cluster) {
        /* to the master of KEYS[1]'s slot; a keyless one, as it names */

        if (nkeys == 0) {
            rc = st->cluster_list(st, call, argc + 3, args, lens, reason);

        } else {
            rc = st->cluster_send(st, call,
                     ngx_http_loom_cluster_slot((u_char *) argv[0],
                                                argvlen[0]),
                     1, argc + 3, args, lens, reason);
        }

        goto done;
    }

    /* the command is kept until answered: a NOSCRIPT sends it again */

    rc = ngx_http_loom_redis_send(rd, argc + 3, args, lens,
                                  ngx_http_loom_store_reply, call, 1,
                                  reason);

    if (rc == NGX_OK && st->conf->redis_wait && !call->ephemeral) {
        ngx_http_loom_store_wait(&st->command, call);
    }

done:

    if (args != args_buf) {
        ngx_free(args);
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

    ngx_http_loom_store_replied(&st->command, call, reply);
}


void
ngx_http_loom_store_replied(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call, redisReply *reply)
{
    if (call->durable) {
        /* kept until its WAIT answers, right behind it */
        link->waits[link->waits_head].reply = reply;

        if (reply) {
            link->rd.keep_reply = 1;
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
    char                       *cmd;
    size_t                      len;
    const char                 *reason;
    ngx_http_loom_redis_t      *rd;
    ngx_http_loom_redis_cmd_t  *current;

    rd = &st->command.rd;
    current = ngx_http_loom_redis_current(rd);

    if (current == NULL || current->command == NULL) {
        return NGX_DECLINED;
    }

    cmd = ngx_http_loom_store_eval(st, current->command, current->len, &len,
                                   &rd->log);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_loom_redis_send_formatted(rd, cmd, len,
                                           ngx_http_loom_store_reply, call,
                                           0, &reason)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    if (call->durable) {
        /* the WAIT behind the failed attempt answers nothing now */
        ngx_http_loom_store_wait_skip(&st->command, call);
        ngx_http_loom_store_wait(&st->command, call);
    }

    (void) ngx_http_loom_store_load_scripts(&st->command,
                                            ngx_http_loom_store_reloaded);

    return NGX_OK;
}


/* "*<argc>\r\n$7\r\nEVALSHA\r\n$40\r\n<sha>\r\n" then the rest */

char *
ngx_http_loom_store_eval(ngx_http_loom_store_t *st, char *command,
    size_t len, size_t *out, ngx_log_t *log)
{
    u_char      *p, *start, *rest, *last, *cmd, *q;
    size_t       size;
    ngx_uint_t   i;
    ngx_str_t   *body;

    start = (u_char *) command;
    last = start + len;

    p = ngx_strlchr(start, last, '\n');

    if (p == NULL || last - p < 1 + 18 + 42
        || ngx_strncmp(p + 1, "$7\r\nEVALSHA\r\n$40\r\n", 18) != 0)
    {
        return NULL;
    }

    p++;

    for (i = 0; i < NGX_HTTP_LOOM_SCRIPTS; i++) {
        if (ngx_strncmp(p + 18, st->sha[i], 40) == 0) {
            break;
        }
    }

    if (i == NGX_HTTP_LOOM_SCRIPTS) {
        return NULL;
    }

    body = &st->scripts[i];
    rest = p + 18 + 42;

    size = (p - start) + sizeof("$4\r\nEVAL\r\n$\r\n\r\n") - 1
           + NGX_SIZE_T_LEN + body->len + (last - rest);

    cmd = ngx_alloc(size, log);
    if (cmd == NULL) {
        return NULL;
    }

    q = ngx_cpymem(cmd, start, p - start);
    q = ngx_sprintf(q, "$4\r\nEVAL\r\n$%uz\r\n", body->len);
    q = ngx_cpymem(q, body->data, body->len);
    q = ngx_cpymem(q, "\r\n", 2);
    q = ngx_cpymem(q, rest, last - rest);

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "loom: scripts missing on the server, sending again");

    *out = q - cmd;

    return (char *) cmd;
}



void
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

void
ngx_http_loom_store_wait(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call)
{
    u_char                      n[NGX_INT_T_LEN], t[NGX_INT_T_LEN];
    size_t                      argvlen[3];
    ngx_uint_t                  i, size;
    const char                 *argv[3], *reason;
    ngx_http_loom_store_t      *st;
    ngx_http_loom_store_wait_t *waits, *wait;

    st = link->store;

    if (link->nwaits == link->waits_size) {
        size = link->waits_size ? 2 * link->waits_size
                                : NGX_HTTP_LOOM_WAITS_MIN;

        waits = ngx_alloc(size * sizeof(ngx_http_loom_store_wait_t),
                          &link->rd.log);
        if (waits == NULL) {
            call->unconfirmed = 1;
            return;
        }

        for (i = 0; i < link->nwaits; i++) {
            waits[i] = link->waits[(link->waits_head + i)
                                 & (link->waits_size - 1)];
        }

        if (link->waits) {
            ngx_free(link->waits);
        }

        link->waits = waits;
        link->waits_size = size;
        link->waits_head = 0;
    }

    argv[0] = "WAIT";
    argvlen[0] = 4;
    argv[1] = (char *) n;
    argvlen[1] = ngx_sprintf(n, "%ui", st->conf->redis_wait) - n;
    argv[2] = (char *) t;
    argvlen[2] = ngx_sprintf(t, "%M", st->conf->redis_wait_timeout) - t;

    if (ngx_http_loom_redis_send(&link->rd, 3, argv, argvlen,
                                 ngx_http_loom_store_wait_reply, link, 0,
                                 &reason)
        != NGX_OK)
    {
        /* the script went out: its answer cannot be confirmed */
        call->unconfirmed = 1;
        return;
    }

    wait = &link->waits[(link->waits_head + link->nwaits)
                        & (link->waits_size - 1)];
    wait->call = call;
    wait->reply = NULL;
    link->nwaits++;

    call->durable = 1;
}


static void
ngx_http_loom_store_wait_reply(void *data, redisReply *reply)
{
    redisReply                  *script;
    ngx_http_loom_store_t       *st;
    ngx_http_loom_store_link_t  *link;
    ngx_http_loom_store_wait_t   wait;
    ngx_http_loom_store_call_t  *call;

    link = data;
    st = link->store;

    if (link->nwaits == 0) {
        return;
    }

    wait = link->waits[link->waits_head];
    link->waits_head = (link->waits_head + 1) & (link->waits_size - 1);
    link->nwaits--;

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


void
ngx_http_loom_store_wait_skip(ngx_http_loom_store_link_t *link,
    ngx_http_loom_store_call_t *call)
{
    if (call->durable && link->nwaits) {
        link->waits[link->waits_head].call = NULL;
        call->durable = 0;
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
ngx_http_loom_store_waits_free(ngx_http_loom_store_link_t *link)
{
    while (link->nwaits) {
        if (link->waits[link->waits_head].reply) {
            freeReplyObject(link->waits[link->waits_head].reply);
        }

        link->waits_head = (link->waits_head + 1) & (link->waits_size - 1);
        link->nwaits--;
    }

    if (link->waits) {
        ngx_free(link->waits);
        link->waits = NULL;
    }
}
