/*
 * Copyright (C) Data Loom
 */


#ifndef _NGX_HTTP_LOOM_UPGRADE_H_INCLUDED_
#define _NGX_HTTP_LOOM_UPGRADE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_loom_session.h"


/*
 * Runs once the 101 response is on its way, after the content handler
 * took a reference to the request (r->main->count++) and returned
 * NGX_DONE: from the next pass of the event loop on, the connection
 * belongs to the session.
 */
void ngx_http_loom_upgrade_start(ngx_http_loom_session_t *s);


#endif /* _NGX_HTTP_LOOM_UPGRADE_H_INCLUDED_ */
