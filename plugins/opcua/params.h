/* OPC UA plugin: the params structs the daemon fills from the schemas in schema.c (their layout
 * is the contract with the daemon's schema validator), and the choice indices. */
#ifndef IB_OPCUA_PARAMS_H
#define IB_OPCUA_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

enum op_policy { /* the values of enum ua_policy */
                 OP_POLICY_NONE,
                 OP_POLICY_BASIC256SHA256,
                 OP_POLICY_AES128_SHA256_RSAOAEP,
                 OP_POLICY_AES256_SHA256_RSAPSS
};
enum op_mode { OP_MODE_NONE, OP_MODE_SIGN, OP_MODE_SIGN_AND_ENCRYPT };

struct op_connection_params {
    const char *endpoint;
    int32_t security_policy; /* enum op_policy */
    int32_t security_mode;   /* enum op_mode */
    bool allow_insecure;
    int64_t timeout_ms;
    int64_t session_timeout_ms;
    int64_t token_lifetime_ms;
    int64_t max_nodes_per_read;
    int64_t max_message_size;
    const char *application_uri;
    const char *pki_dir;
    const char *user;
    const char *password_file;
    const char *certificate;      /* our application certificate file; NULL: pki_dir/own */
    const char *private_key;      /* its key (PEM, mode 0600) */
    const char *user_certificate; /* X.509 user identity; NULL: none */
    const char *user_private_key; /* its key (PEM, mode 0600) */
};

struct op_device_params {
    int64_t unused;
};

enum op_group_mode { OP_GROUP_READ, OP_GROUP_SUBSCRIBE };
enum op_deadband { OP_DEADBAND_NONE, OP_DEADBAND_ABSOLUTE, OP_DEADBAND_PERCENT };

struct op_group_params {
    int32_t mode;                 /* enum op_group_mode */
    int64_t sampling_interval_ms; /* -1: the group's interval */
    int64_t queue_size;
    bool discard_oldest;
    int32_t deadband_type; /* enum op_deadband */
    double deadband;
};

struct op_tag_params {
    const char *node;
};

#endif
