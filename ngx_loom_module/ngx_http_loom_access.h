/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_ACCESS_H_INCLUDED_
#define _NGX_HTTP_LOOM_ACCESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_loom_perm.h"
#include "ngx_http_loom_jwt.h"


/*
 * What the credential of a connection allows (docs/auth.md).  A session
 * of an endpoint without loom_api_key, loom_auth_file and loom_jwt has
 * none and may do everything, as before.  Made by ngx_http_loom_auth.c at
 * the handshake, on the connection's pool; used by the per-request check
 * and refreshToken of ngx_http_loom_access.c.
 */


/* the close code of a session whose token ran out */
#define NGX_HTTP_LOOM_WS_TOKEN_EXPIRED  4001


typedef struct {
    ngx_http_loom_perm_t          *perm;
    ngx_http_loom_perm_vars_t      vars;         /* {client}, {sub} */
    ngx_http_loom_jwt_claims_t    *claims;       /* the token's, if any */
    time_t                         expires;      /* exp + leeway; 0: never */
    ngx_event_t                    expiry;
} ngx_http_loom_access_t;


#endif /* _NGX_HTTP_LOOM_ACCESS_H_INCLUDED_ */
