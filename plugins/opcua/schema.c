/* OPC UA plugin: its configuration schemas (connection, device and tag keys with types,
 * defaults, ranges and descriptions), which the daemon validates and documents. Data only. */
#include <stddef.h>

#include <ironbridge/ironbridge.h>

#include "params.h"
#include "schema.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const policy_choices[] = {
    [OP_POLICY_NONE] = "None",
    [OP_POLICY_BASIC256SHA256] = "Basic256Sha256",
    [OP_POLICY_AES128_SHA256_RSAOAEP] = "Aes128_Sha256_RsaOaep",
    [OP_POLICY_AES256_SHA256_RSAPSS] = "Aes256_Sha256_RsaPss",
    NULL,
};

static const char *const mode_choices[] = {
    [OP_MODE_NONE] = "None",
    [OP_MODE_SIGN] = "Sign",
    [OP_MODE_SIGN_AND_ENCRYPT] = "SignAndEncrypt",
    NULL,
};

#define CP struct op_connection_params
#define DUR(k, f, d, lo, hi, desc)                                                                 \
    {                                                                                              \
        .key = k, .type = IB_S_DURATION, .flags = IB_SF_RANGE, .offset = offsetof(CP, f),          \
        .def = d, .min = lo, .max = hi, .description = desc                                        \
    }
static const struct ib_schema_entry connection_entries[] = {
    {.key = "endpoint",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(CP, endpoint),
     .description = "The server's endpoint URL, opc.tcp://host:port[/path] (port 4840 when "
                    "absent)"},
    {.key = "security_policy",
     .type = IB_S_ENUM,
     .offset = offsetof(CP, security_policy),
     .def = "Basic256Sha256",
     .choices = policy_choices,
     .description = "Security policy of the secure channel: Basic256Sha256, "
                    "Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, or None (needs "
                    "allow_insecure: true)"},
    {.key = "security_mode",
     .type = IB_S_ENUM,
     .offset = offsetof(CP, security_mode),
     .def = "SignAndEncrypt",
     .choices = mode_choices,
     .description = "Message security mode: SignAndEncrypt, Sign, or None (with security_policy "
                    "None)"},
    {.key = "allow_insecure",
     .type = IB_S_BOOL,
     .offset = offsetof(CP, allow_insecure),
     .def = "false",
     .description = "Accept security_policy None: data and commands travel unsigned and in the "
                    "clear; warned at every connect"},
    DUR("timeout", timeout_ms, "5s", 100, 600000,
        "How long to wait for the connection and for each response"),
    DUR("session_timeout", session_timeout_ms, "60s", 1000, 3600000,
        "Session timeout requested from the server"),
    DUR("token_lifetime", token_lifetime_ms, "1h", 1000, 86400000,
        "Secure channel token lifetime requested; the token is renewed at 75% of what the "
        "server grants"),
    {.key = "max_nodes_per_read",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(CP, max_nodes_per_read),
     .def = "1000",
     .min = 1,
     .max = 100000,
     .description = "Most nodes in one Read request; the server's MaxNodesPerRead lowers it"},
    {.key = "max_message_size",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(CP, max_message_size),
     .def = "16777216",
     .min = 65536,
     .max = 268435456,
     .description = "Largest response message accepted, in bytes"},
    {.key = "pki_dir",
     .type = IB_S_STRING,
     .offset = offsetof(CP, pki_dir),
     .description = "PKI directory: own/ (the gateway's certificate and key, made at first "
                    "connect), trusted/ (trusted server and CA certificates, CRLs in trusted/crl), "
                    "issuers/ (CA certificates that complete chains, CRLs in issuers/crl), "
                    "rejected/ (refused ones); $STATE_DIRECTORY/opcua-pki when absent"},
    {.key = "user",
     .type = IB_S_STRING,
     .offset = offsetof(CP, user),
     .description = "User name for the session (with password_file); anonymous when absent"},
    {.key = "password_file",
     .type = IB_S_STRING,
     .offset = offsetof(CP, password_file),
     .description = "File whose first line is the user's password (mode 0600); the password "
                    "is sent encrypted with the server's key as the endpoint asks, never logged"},
    {.key = "certificate",
     .type = IB_S_STRING,
     .offset = offsetof(CP, certificate),
     .description = "The gateway's application instance certificate (DER or PEM), with "
                    "private_key, instead of the one made in pki_dir/own; its subjectAltName URI "
                    "must be application_uri"},
    {.key = "private_key",
     .type = IB_S_STRING,
     .offset = offsetof(CP, private_key),
     .description = "The certificate's private key (unencrypted PEM, mode 0600)"},
    {.key = "user_certificate",
     .type = IB_S_STRING,
     .offset = offsetof(CP, user_certificate),
     .description = "X.509 user identity: the user's certificate (DER or PEM), with "
                    "user_private_key, instead of user and password_file"},
    {.key = "user_private_key",
     .type = IB_S_STRING,
     .offset = offsetof(CP, user_private_key),
     .description = "The user certificate's private key (unencrypted PEM, mode 0600); it signs "
                    "the server's certificate and nonce at each session activation"},
    {.key = "application_uri",
     .type = IB_S_STRING,
     .offset = offsetof(CP, application_uri),
     .description = "ApplicationUri the gateway announces and puts in its certificate; "
                    "urn:<hostname>:ironbridge when absent"},
};
#undef CP
#undef DUR

static const char *const group_mode_choices[] = {
    [OP_GROUP_READ] = "read",
    [OP_GROUP_SUBSCRIBE] = "subscribe",
    NULL,
};

static const char *const deadband_choices[] = {
    [OP_DEADBAND_NONE] = "none",
    [OP_DEADBAND_ABSOLUTE] = "absolute",
    [OP_DEADBAND_PERCENT] = "percent",
    NULL,
};

#define GP struct op_group_params
static const struct ib_schema_entry group_entries[] = {
    {.key = "mode",
     .type = IB_S_ENUM,
     .offset = offsetof(GP, mode),
     .def = "read",
     .choices = group_mode_choices,
     .description = "read: the group's nodes are read at its interval (batched Read); "
                    "subscribe: one subscription per group, its publishing interval the group's "
                    "interval, changes pushed as the server sends them"},
    {.key = "sampling_interval_ms",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(GP, sampling_interval_ms),
     .def = "-1",
     .min = -1,
     .max = 86400000,
     .description = "subscribe: how often the server samples each node, in ms (0: as fast as it "
                    "can, -1: the group's interval)"},
    {.key = "queue_size",
     .type = IB_S_INT,
     .flags = IB_SF_RANGE,
     .offset = offsetof(GP, queue_size),
     .def = "1",
     .min = 1,
     .max = 10000,
     .description = "subscribe: values the server keeps per node between two publishes"},
    {.key = "discard_oldest",
     .type = IB_S_BOOL,
     .offset = offsetof(GP, discard_oldest),
     .def = "true",
     .description = "subscribe: when the queue is full, drop its oldest value (false: the "
                    "newest)"},
    {.key = "deadband_type",
     .type = IB_S_ENUM,
     .offset = offsetof(GP, deadband_type),
     .def = "none",
     .choices = deadband_choices,
     .description = "subscribe: the server's DataChangeFilter deadband: none, absolute (in the "
                    "value's unit) or percent (of the node's EURange)"},
    {.key = "deadband",
     .type = IB_S_DOUBLE,
     .flags = IB_SF_RANGE,
     .offset = offsetof(GP, deadband),
     .def = "0",
     .dmin = 0,
     .dmax = 1e300,
     .description = "subscribe: the deadband value (with deadband_type absolute or percent, "
                    "0..100 for percent)"},
};
#undef GP

static const struct ib_schema_entry tag_entries[] = {
    {.key = "node",
     .type = IB_S_STRING,
     .flags = IB_SF_REQUIRED,
     .offset = offsetof(struct op_tag_params, node),
     .description = "NodeId of the variable: ns=2;s=Machine.Speed, i=2258, ns=3;g=<guid>, "
                    "ns=1;b=<base64>, or nsu=<namespace URI>;s=... (the index looked up in the "
                    "server's NamespaceArray at every connect)"},
};

const struct ib_schema op_connection_schema = {
    .struct_size = sizeof(struct op_connection_params),
    .n_entries = ARRAY_SIZE(connection_entries),
    .entries = connection_entries,
};

const struct ib_schema op_device_schema = {0, 0, NULL, {0}};

const struct ib_schema op_tag_schema = {
    .struct_size = sizeof(struct op_tag_params),
    .n_entries = ARRAY_SIZE(tag_entries),
    .entries = tag_entries,
};

const struct ib_schema op_group_schema = {
    .struct_size = sizeof(struct op_group_params),
    .n_entries = ARRAY_SIZE(group_entries),
    .entries = group_entries,
};
