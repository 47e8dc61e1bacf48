/* OPC UA plugin: GetEndpoints (OPC 10000-4 §5.4.4), CreateSession and ActivateSession
 * (§5.6.2, §5.6.3) with an anonymous identity token (with a security policy: the client
 * certificate and nonce, and the client signature over the server's certificate and nonce),
 * and CloseSession. The AuthenticationToken is copied out of the response so that later
 * requests can carry it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include <ironbridge/error.h>

#include "ids.h"
#include "session.h"

#define TOKEN_ANONYMOUS 0
#define TOKEN_USERNAME  1
#define TOKEN_X509      2
#define ID_X509_TOKEN   327 /* X509IdentityToken, binary encoding */

static int policy_of(struct ua_str uri, int channel_policy)
{
    for (int p = UA_POLICY_NONE; p < UA_POLICY_COUNT; p++)
        if (uri.len > 0 && (size_t)uri.len == strlen(ua_policy_uri(p)) &&
            memcmp(uri.ptr, ua_policy_uri(p), (size_t)uri.len) == 0)
            return p;
    return uri.len > 0 ? -1 : channel_policy; /* empty: the channel's policy */
}

static void copy_id(char *dst, size_t size, struct ua_str id)
{
    if (id.len >= 0 && (size_t)id.len < size) {
        memcpy(dst, id.ptr, (size_t)id.len);
        dst[id.len] = '\0';
    }
}

static bool str_eq(struct ua_str s, const char *c)
{
    return s.len >= 0 && (size_t)s.len == strlen(c) && memcmp(s.ptr, c, (size_t)s.len) == 0;
}

/* Skips an ApplicationDescription; returns its ApplicationUri. */
static struct ua_str skip_app_description(struct ua_cur *c)
{
    struct ua_ltext lt;
    struct ua_str uri = ua_get_str(c); /* ApplicationUri */
    ua_get_str(c);                     /* ProductUri */
    ua_get_ltext(c, &lt);
    ua_get_i32(c); /* ApplicationType */
    ua_get_str(c); /* GatewayServerUri */
    ua_get_str(c); /* DiscoveryProfileUri */
    int32_t n = ua_get_array_len(c, 4);
    for (int32_t i = 0; i < n; i++)
        ua_get_str(c);
    return uri;
}

/* One EndpointDescription; when it has cfg's policy and mode, its anonymous policy and
 * certificate go to s. */
static void endpoint(struct ua_cur *c, struct ua_session *s, const struct ua_session_config *cfg,
                     bool *found)
{
    ua_get_str(c); /* EndpointUrl */
    struct ua_str app_uri = skip_app_description(c);
    struct ua_str cert = ua_get_str(c);
    int32_t mode = ua_get_i32(c);
    struct ua_str policy = ua_get_str(c);
    bool none = !*found && mode == cfg->mode && str_eq(policy, ua_policy_uri(cfg->policy));
    if (none && c->err == UA_OK)
        copy_id(s->server_uri, sizeof s->server_uri, app_uri);
    if (none && c->err == UA_OK && cert.len > 0) {
        free(s->endpoint_cert);
        s->endpoint_cert = malloc((size_t)cert.len);
        if (s->endpoint_cert)
            memcpy(s->endpoint_cert, cert.ptr, (size_t)cert.len);
        s->endpoint_cert_len = s->endpoint_cert ? (size_t)cert.len : 0;
    }
    int32_t n = ua_get_array_len(c, 4 + 4 + 4 + 4 + 4);
    for (int32_t i = 0; i < n; i++) {
        struct ua_str id = ua_get_str(c);
        int32_t type = ua_get_i32(c);
        ua_get_str(c);                     /* IssuedTokenType */
        ua_get_str(c);                     /* IssuerEndpointUrl */
        struct ua_str uri = ua_get_str(c); /* SecurityPolicyUri */
        if (c->err != UA_OK || !none)
            continue;
        if (type == TOKEN_ANONYMOUS)
            copy_id(s->anonymous_policy, sizeof s->anonymous_policy, id);
        if (type == TOKEN_USERNAME && !s->user_policy[0]) {
            copy_id(s->user_policy, sizeof s->user_policy, id);
            s->user_token_policy = policy_of(uri, cfg->policy);
        }
        if (type == TOKEN_X509 && !s->cert_policy[0]) {
            copy_id(s->cert_policy, sizeof s->cert_policy, id);
            s->cert_token_policy = policy_of(uri, cfg->policy);
        }
    }
    ua_get_str(c); /* TransportProfileUri */
    ua_get_u8(c);  /* SecurityLevel */
    if (c->err == UA_OK && none)
        *found = true;
}

int ua_session_endpoints(struct ua_channel *ch, struct ua_session *s,
                         const struct ua_session_config *cfg)
{
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_GET_ENDPOINTS_REQ, NULL);
    ua_put_cstr(b, cfg->url);
    ua_put_i32(b, 0); /* LocaleIds */
    ua_put_i32(b, 0); /* ProfileUris */
    struct ua_cur c;
    int rc = ua_channel_call(ch, UA_ID_GET_ENDPOINTS_RESP, &c);
    if (rc != IB_OK)
        return rc;
    s->anonymous_policy[0] = '\0';
    s->user_policy[0] = '\0';
    s->server_uri[0] = '\0';
    s->cert_policy[0] = '\0';
    bool found = false;
    int32_t n = ua_get_array_len(&c, 20);
    for (int32_t i = 0; i < n && c.err == UA_OK; i++)
        endpoint(&c, s, cfg, &found);
    if (c.err != UA_OK) {
        snprintf(ch->error, sizeof ch->error, "undecodable GetEndpoints response: %s",
                 ua_err_name(c.err));
        return IB_ERR_PROTOCOL;
    }
    if (!found) {
        static const char *const modes[] = {"", "None", "Sign", "SignAndEncrypt"};
        snprintf(ch->error, sizeof ch->error,
                 "the server offers no endpoint with security policy %s and mode %s",
                 strchr(ua_policy_uri(cfg->policy), '#') + 1, modes[cfg->mode & 3]);
        return IB_ERR_DENIED;
    }
    return IB_OK;
}

static void put_app_description(struct ua_buf *b, const struct ua_session_config *cfg)
{
    struct ua_ltext name = {{NULL, -1}, ua_str_c(cfg->application_name)};
    ua_put_cstr(b, cfg->application_uri);
    ua_put_cstr(b, "urn:ironbridge");
    ua_put_ltext(b, &name);
    ua_put_u32(b, 1); /* ApplicationType Client */
    ua_put_i32(b, -1);
    ua_put_i32(b, -1);
    ua_put_i32(b, -1);
}

/* Copies the AuthenticationToken out of the response buffer. */
static int keep_token(struct ua_session *s, const struct ua_nodeid *t)
{
    s->auth = *t;
    if (t->kind == UA_NID_STRING || t->kind == UA_NID_BYTES) {
        if (t->id.str.len < 0 || (size_t)t->id.str.len > sizeof s->auth_raw)
            return -1;
        if (t->id.str.len > 0)
            memcpy(s->auth_raw, t->id.str.ptr, (size_t)t->id.str.len);
        s->auth.id.str.ptr = (const char *)s->auth_raw;
    }
    return 0;
}

/* The rest of a CreateSession response on a secured channel: the server certificate must be
 * the endpoint's, and the ServerSignature must verify over our certificate and nonce
 * (OPC 10000-4 §5.6.2). */
static int check_server_signature(struct ua_channel *ch, struct ua_cur *c, const uint8_t *nonce)
{
    struct ua_sec *sec = ch->sec;
    struct ua_str cert = ua_get_str(c);
    struct ua_session scratch = {0};
    struct ua_session_config none = {.mode = -1};
    bool found = false;
    int32_t n = ua_get_array_len(c, 20); /* ServerEndpoints: walked, not kept */
    for (int32_t i = 0; i < n && c->err == UA_OK; i++)
        endpoint(c, &scratch, &none, &found);
    ua_session_free(&scratch);
    n = ua_get_array_len(c, 8); /* ServerSoftwareCertificates */
    for (int32_t i = 0; i < n && c->err == UA_OK; i++) {
        ua_get_str(c);
        ua_get_str(c);
    }
    struct ua_str alg = ua_get_str(c), sig = ua_get_str(c);
    if (c->err != UA_OK) {
        snprintf(ch->error, sizeof ch->error, "undecodable CreateSession response");
        return IB_ERR_PROTOCOL;
    }
    if (cert.len < 0 || (size_t)cert.len != sec->peer_cert_len ||
        memcmp(cert.ptr, sec->peer_cert, sec->peer_cert_len) != 0) {
        snprintf(ch->error, sizeof ch->error,
                 "CreateSession came back with another server certificate than the endpoint's");
        return IB_ERR_PROTOCOL;
    }
    if (!str_eq(alg, ua_policy_sig_alg(sec->policy)) || sig.len <= 0 ||
        ua_sec_verify(sec, sec->own_cert, sec->own_cert_len, nonce, UA_NONCE_LEN,
                      (const uint8_t *)sig.ptr, (size_t)sig.len) != 0) {
        snprintf(ch->error, sizeof ch->error,
                 "the server's signature in CreateSession does not verify "
                 "(BadApplicationSignatureInvalid)");
        return IB_ERR_PROTOCOL;
    }
    return IB_OK;
}

static int create(struct ua_channel *ch, struct ua_session *s, const struct ua_session_config *cfg)
{
    uint8_t nonce[32];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        return IB_ERR_IO;
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_CREATE_SESSION_REQ, NULL);
    put_app_description(b, cfg);
    ua_put_i32(b, -1); /* ServerUri */
    ua_put_cstr(b, cfg->url);
    ua_put_cstr(b, cfg->session_name);
    ua_put_i32(b, (int32_t)sizeof nonce);
    ua_put_bytes(b, nonce, sizeof nonce);
    if (ch->sec && ch->sec->policy != UA_POLICY_NONE) {
        ua_put_i32(b, (int32_t)ch->sec->own_cert_len);
        ua_put_bytes(b, ch->sec->own_cert, ch->sec->own_cert_len);
    } else {
        ua_put_i32(b, -1); /* ClientCertificate */
    }
    ua_put_double(b, cfg->timeout_ms);
    ua_put_u32(b, ch->ours.max_msg);
    struct ua_cur c;
    int rc = ua_channel_call(ch, UA_ID_CREATE_SESSION_RESP, &c);
    if (rc != IB_OK)
        return rc;
    struct ua_nodeid id, token;
    ua_get_nodeid(&c, &id);
    ua_get_nodeid(&c, &token);
    s->revised_timeout_ms = ua_get_double(&c);
    struct ua_str srv_nonce = ua_get_str(&c);
    bool secure = ch->sec && ch->sec->policy != UA_POLICY_NONE;
    if (secure && srv_nonce.len != UA_NONCE_LEN) {
        snprintf(ch->error, sizeof ch->error, "the server's session nonce is not 32 bytes");
        return IB_ERR_PROTOCOL;
    }
    s->has_server_nonce = srv_nonce.len == UA_NONCE_LEN;
    if (s->has_server_nonce)
        memcpy(s->server_nonce, srv_nonce.ptr, UA_NONCE_LEN);
    if (c.err != UA_OK || keep_token(s, &token) != 0) {
        snprintf(ch->error, sizeof ch->error, "undecodable CreateSession response");
        return IB_ERR_PROTOCOL;
    }
    return secure ? check_server_signature(ch, &c, nonce) : IB_OK;
}

/* The UserNameIdentityToken's password: UInt32 length || password || server nonce, encrypted
 * with the server's key by the token policy's RSA-OAEP when it is not None (OPC 10000-4
 * §7.41.2.3). */
static int put_password(struct ua_channel *ch, struct ua_session *s,
                        const struct ua_session_config *cfg, struct ua_buf *b)
{
    size_t pw = strlen(cfg->password);
    if (s->user_token_policy == UA_POLICY_NONE) {
        ua_put_i32(b, (int32_t)pw);
        ua_put_bytes(b, cfg->password, pw);
        ua_put_i32(b, -1);
        return IB_OK;
    }
    struct ua_sec *sec = cfg->token_sec;
    if (!sec || !sec->peer_key || !s->has_server_nonce || pw > 4096) {
        snprintf(ch->error, sizeof ch->error,
                 "cannot encrypt the password: the server gave no certificate or nonce");
        return IB_ERR_PROTOCOL;
    }
    uint8_t plain[4 + 4096 + UA_NONCE_LEN];
    uint32_t n = (uint32_t)(pw + UA_NONCE_LEN);
    for (int i = 0; i < 4; i++)
        plain[i] = (uint8_t)(n >> (8 * i));
    memcpy(plain + 4, cfg->password, pw);
    memcpy(plain + 4 + pw, s->server_nonce, UA_NONCE_LEN);
    uint8_t *ct = NULL;
    size_t ct_len = 0;
    int rc = ua_sec_rsa_encrypt(sec, s->user_token_policy, plain, 4 + n, &ct, &ct_len);
    OPENSSL_cleanse(plain, sizeof plain);
    if (rc != 0) {
        snprintf(ch->error, sizeof ch->error, "cannot encrypt the password");
        return IB_ERR_PROTOCOL;
    }
    ua_put_i32(b, (int32_t)ct_len);
    ua_put_bytes(b, ct, ct_len);
    OPENSSL_free(ct);
    ua_put_cstr(b, ua_policy_enc_alg(s->user_token_policy));
    return IB_OK;
}

/* The X509IdentityToken: the user's certificate (its signature follows the token). */
static int put_x509(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg, struct ua_buf *b)
{
    if (!s->cert_policy[0] || s->cert_token_policy <= UA_POLICY_NONE) {
        snprintf(ch->error, sizeof ch->error,
                 "the endpoint accepts no X.509 user certificate (or signed with a policy other "
                 "than Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss)");
        return IB_ERR_DENIED;
    }
    struct ua_nodeid type = ua_nid_num(0, ID_X509_TOKEN);
    ua_put_nodeid(b, &type);
    ua_put_u8(b, 1);
    ua_put_i32(b, (int32_t)(4 + strlen(s->cert_policy) + 4 + cfg->user_cert_len));
    ua_put_cstr(b, s->cert_policy);
    ua_put_i32(b, (int32_t)cfg->user_cert_len);
    ua_put_bytes(b, cfg->user_cert, cfg->user_cert_len);
    return IB_OK;
}

/* UserTokenSignature: with an X.509 identity, the user's key signs the server's certificate
 * and nonce (OPC 10000-4 §5.6.3); else null. */
static int put_user_signature(struct ua_channel *ch, struct ua_session *s,
                              const struct ua_session_config *cfg, struct ua_buf *b)
{
    if (!cfg->user_key) {
        ua_put_i32(b, -1); /* Algorithm */
        ua_put_i32(b, -1); /* Signature */
        return IB_OK;
    }
    struct ua_sec user = {.policy = s->cert_token_policy, .own_key = cfg->user_key};
    const struct ua_sec *srv = cfg->token_sec;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (!srv || !srv->peer_cert || !s->has_server_nonce ||
        ua_sec_sign(&user, srv->peer_cert, srv->peer_cert_len, s->server_nonce, UA_NONCE_LEN, &sig,
                    &sig_len) != 0) {
        snprintf(ch->error, sizeof ch->error,
                 "cannot sign the X.509 user token: the server gave no certificate or nonce, or "
                 "the user key cannot sign");
        return IB_ERR_PROTOCOL;
    }
    ua_put_cstr(b, ua_policy_sig_alg(s->cert_token_policy));
    ua_put_i32(b, (int32_t)sig_len);
    ua_put_bytes(b, sig, sig_len);
    OPENSSL_free(sig);
    return IB_OK;
}

/* The UserIdentityToken ExtensionObject: anonymous, user name and password, or X.509. */
static int put_identity(struct ua_channel *ch, struct ua_session *s,
                        const struct ua_session_config *cfg, struct ua_buf *b)
{
    if (cfg->user_key)
        return put_x509(ch, s, cfg, b);
    bool user = cfg->user != NULL;
    if (user && (!s->user_policy[0] || s->user_token_policy < 0)) {
        snprintf(ch->error, sizeof ch->error,
                 "the endpoint accepts no user name and password (or with an unknown policy)");
        return IB_ERR_DENIED;
    }
    struct ua_nodeid type =
        ua_nid_num(0, user ? UA_ID_USERNAME_IDENTITY_TOKEN : UA_ID_ANONYMOUS_IDENTITY_TOKEN);
    ua_put_nodeid(b, &type);
    ua_put_u8(b, 1); /* body: ByteString */
    size_t len_at = b->len;
    ua_put_i32(b, 0);
    size_t body_at = b->len;
    if (user) {
        ua_put_cstr(b, s->user_policy);
        ua_put_cstr(b, cfg->user);
        int rc = put_password(ch, s, cfg, b);
        if (rc != IB_OK)
            return rc;
    } else {
        ua_put_cstr(b, s->anonymous_policy[0] ? s->anonymous_policy : "anonymous");
    }
    ua_buf_patch_u32(b, len_at, (uint32_t)(b->len - body_at));
    return IB_OK;
}

static int activate(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (ch->sec && ch->sec->policy != UA_POLICY_NONE &&
        ua_sec_sign(ch->sec, ch->sec->peer_cert, ch->sec->peer_cert_len, s->server_nonce,
                    UA_NONCE_LEN, &sig, &sig_len) != 0) {
        snprintf(ch->error, sizeof ch->error, "cannot sign ActivateSession with our key");
        return IB_ERR_INVALID;
    }
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_ACTIVATE_SESSION_REQ, &s->auth);
    if (sig) { /* ClientSignature: over the server's certificate and nonce */
        ua_put_cstr(b, ua_policy_sig_alg(ch->sec->policy));
        ua_put_i32(b, (int32_t)sig_len);
        ua_put_bytes(b, sig, sig_len);
        OPENSSL_free(sig);
    } else {
        ua_put_i32(b, -1); /* ClientSignature.Algorithm */
        ua_put_i32(b, -1); /* ClientSignature.Signature */
    }
    ua_put_i32(b, 0); /* ClientSoftwareCertificates */
    ua_put_i32(b, 0); /* LocaleIds */
    int rc = put_identity(ch, s, cfg, b);
    if (rc == IB_OK)
        rc = put_user_signature(ch, s, cfg, b);
    if (rc != IB_OK)
        return rc;
    struct ua_cur c;
    return ua_channel_call(ch, UA_ID_ACTIVATE_SESSION_RESP, &c);
}

int ua_session_open(struct ua_channel *ch, struct ua_session *s,
                    const struct ua_session_config *cfg)
{
    s->active = false;
    int rc = create(ch, s, cfg);
    if (rc == IB_OK)
        rc = activate(ch, s, cfg);
    s->active = rc == IB_OK;
    return rc;
}

void ua_session_close(struct ua_channel *ch, struct ua_session *s)
{
    if (!s->active || ch->fd < 0)
        return;
    struct ua_buf *b = ua_channel_begin(ch, UA_ID_CLOSE_SESSION_REQ, &s->auth);
    ua_put_bool(b, true); /* DeleteSubscriptions */
    struct ua_cur c;
    ua_channel_call(ch, UA_ID_CLOSE_SESSION_RESP, &c);
    s->active = false;
}

void ua_session_free(struct ua_session *s)
{
    free(s->endpoint_cert);
    s->endpoint_cert = NULL;
    s->endpoint_cert_len = 0;
}
