/* OPC UA plugin: the session layer (session.c) on one channel: GetEndpoints (the endpoint and
 * user token policies matching the configured security), CreateSession, ActivateSession with an
 * anonymous identity, CloseSession. One poller thread. s->endpoint_cert is freed by
 * ua_session_free. */
#ifndef IB_OPCUA_SESSION_H
#define IB_OPCUA_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "channel.h"

struct ua_session_config {
    const char *url;
    const char *application_uri;
    const char *application_name;
    const char *session_name;
    double timeout_ms;        /* requested session timeout */
    int policy;               /* enum ua_policy of the endpoint to use */
    int mode;                 /* enum ua_mode */
    const char *user;         /* NULL: anonymous */
    const char *password;     /* with user; never logged */
    struct ua_sec *token_sec; /* for encrypting the password with the server's key */
    EVP_PKEY *user_key;       /* X.509 user identity (instead of user): its key, the caller's */
    const uint8_t *user_cert; /* ... and its certificate (DER) */
    size_t user_cert_len;
};

struct ua_session {
    bool active;
    struct ua_nodeid auth; /* AuthenticationToken; string/bytes point into auth_raw */
    uint8_t auth_raw[128];
    char anonymous_policy[64]; /* the endpoint's PolicyId for anonymous ("" if none) */
    char user_policy[64];      /* ... for user name and password ("" if none) */
    char server_uri[512];      /* the chosen endpoint's server ApplicationUri ("" if none) */
    int user_token_policy;     /* enum ua_policy that encrypts the password */
    char cert_policy[64];      /* ... for an X.509 certificate ("" if none) */
    int cert_token_policy;     /* enum ua_policy that signs the X.509 token */
    bool has_server_nonce;
    double revised_timeout_ms;
    uint8_t *endpoint_cert; /* the chosen endpoint's ServerCertificate (DER, owned; free) */
    size_t endpoint_cert_len;
    uint8_t server_nonce[UA_NONCE_LEN];
};

/* GetEndpoints on the channel and pick the endpoint of cfg's policy and mode; fills
 * s->anonymous_policy and s->endpoint_cert. IB_ERR_DENIED when the server offers no such
 * endpoint. */
int ua_session_endpoints(struct ua_channel *ch, struct ua_session *s,
                         const struct ua_session_config *cfg);
/* CreateSession + ActivateSession (anonymous); with a security policy on the channel the
 * client certificate, nonce and signature go with them. */
int ua_session_open(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg);
/* CloseSession (best effort). */
void ua_session_close(struct ua_channel *ch, struct ua_session *s);
void ua_session_free(struct ua_session *s);

#endif
