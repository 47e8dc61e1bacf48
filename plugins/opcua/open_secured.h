/* OPC UA client library: opening a secured channel as the plugin and the browse tool both do
 * (open_secured.c): our certificate and key, the endpoint's certificate learnt over a None
 * channel (GetEndpoints) and checked (ua_pki_verify), then the secured channel. The caller's
 * thread; sec and s are the caller's. */
#ifndef IB_OPCUA_OPEN_SECURED_H
#define IB_OPCUA_OPEN_SECURED_H

#include "channel.h"
#include "session.h"

struct ua_own_files {
    const char *pki_dir;
    const char *app_uri; /* for a generated certificate */
    const char *cert;    /* configured certificate file (DER or PEM), NULL: the generated one */
    const char *key;     /* its private key (PEM), with cert */
};

/* 0, or an ib_err with ch->error (and ch->last_status for a refused certificate) set. */
int ua_open_secured(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg, struct ua_sec *sec,
                    const struct ua_own_files *own);

#endif
