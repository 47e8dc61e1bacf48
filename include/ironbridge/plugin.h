/* ironbridge plugin SDK, ABI v1 (1.1): the descriptor a plugin exports and the host table it is
 * given. A plugin is a shared object exporting exactly one symbol, IB_PLUGIN_SYMBOL (see
 * IB_PLUGIN_DEFINE).
 *
 * Threads: create() and destroy() run on the daemon's main thread. open(), close(), read_group(),
 * write_tag() and wait_events() of one instance run on that connection's poller thread only, one
 * call at a time, so an instance needs no locking. Different instances run on different threads
 * concurrently: keep no unprotected global state in a plugin.
 *
 * Ownership, in general: what the daemon passes in (configuration, host table, sample arrays,
 * values to write) stays the daemon's — never free or keep a pointer beyond the lifetime stated
 * beside it. What the plugin returns (its descriptor, schemas, instance, string values) stays the
 * plugin's, for the lifetime stated beside it. Nothing is freed across the boundary.
 * Reserved fields: zero when the daemon fills a struct; a plugin sets them to zero (designated
 * initializers do) and never reads them. Later minors give them meanings whose zero means
 * "as before" (docs/plugin-abi.md).
 */
#ifndef IRONBRIDGE_PLUGIN_H
#define IRONBRIDGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "schema.h"
#include "value.h"

#define IB_ABI_MAJOR 1
#define IB_ABI_MINOR 1

#define IB_PLUGIN_SYMBOL "ironbridge_plugin"

/* ---- Configuration handed to create() --------------------------------------------------------
 * All of it is owned by the daemon and stays valid and unchanged until destroy() returns.
 * `params` points to the struct described by the matching schema, filled and validated.
 * `where` identifies the YAML node for ib_host.config_error(); plugins treat it as opaque. */

struct ib_tag_config {
    const char *name;
    const void *params; /* plugin's tag_schema struct */
    const void *where;
    uint8_t writable; /* the tag accepts writes */
    uint8_t reserved8[7];
    const void *reserved[4];
};

struct ib_group_config {
    const char *name;
    uint32_t interval_ms; /* 0: polled continuously (read_group again as soon as it returns) */
    uint32_t n_tags;
    const struct ib_tag_config *tags;
    const void *where;
    /* ABI 1.1: the plugin's group_schema struct, filled and validated; NULL when the plugin has
     * no group_schema (or is a 1.0 plugin). */
    const void *params;
    const void *reserved[3];
};

struct ib_device_config {
    const char *name;
    const void *params; /* plugin's device_schema struct */
    uint32_t n_groups;
    uint32_t reserved32;
    const struct ib_group_config *groups;
    const void *where;
    const void *reserved[4];
};

struct ib_connection_config {
    const char *name;
    const void *params; /* plugin's connection_schema struct */
    uint32_t n_devices;
    uint32_t reserved32;
    const struct ib_device_config *devices;
    const void *where;
    const void *reserved[4];
};

/* ---- The host table ------------------------------------------------------------------------ */

enum ib_log_level {
    IB_LOG_ERR = 3,
    IB_LOG_WARNING = 4,
    IB_LOG_NOTICE = 5,
    IB_LOG_INFO = 6,
    IB_LOG_DEBUG = 7,
};

/* Opaque per-instance handle the daemon passes to create(); pass it back to host calls. Owned by
 * the daemon, valid until destroy() returns. */
struct ib_host_ctx;

/* The host table: owned by the daemon, valid (and unchanged) until destroy() returns. Its
 * functions may be called from create(), destroy() and the poller-thread callbacks of the
 * instance they were given for; not from threads the plugin starts. */
struct ib_host {
    uint16_t abi_major; /* the daemon's IB_ABI_MAJOR */
    uint16_t abi_minor; /* the daemon's IB_ABI_MINOR */
    uint32_t size;      /* sizeof(struct ib_host) in the daemon; check before using later fields */

    /* Log a message for this instance. device and tag may be NULL; they become journald fields
     * IB_DEVICE= and IB_TAG= (IB_CONNECTION= is added by the daemon). Never log secrets.
     * Every string is read before it returns (the caller keeps ownership). See <ironbridge/log.h>
     * for macros. */
    void (*log)(struct ib_host_ctx *ctx, int level, const char *device, const char *tag,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

    /* From create() only: report a semantic configuration error at `where` (the `where` of a
     * config struct), naming `key` (may be NULL). The daemon prints file:line:column and the key
     * path. create() must then return IB_ERR_INVALID. Several errors may be reported. */
    void (*config_error)(struct ib_host_ctx *ctx, const void *where, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

    int64_t (*now_ms)(void);       /* wall clock, ms since the Unix epoch, UTC */
    int64_t (*monotonic_ms)(void); /* monotonic clock, ms */

    /* ABI 1.1 (check host->abi_minor >= 1 first). Hand the daemon a fresh set of samples of one
     * group, as read_group() would have filled them: `samples[0 .. n-1]`, n equal to the
     * group's n_tags, one per tag in config order. The daemon normalizes, reports and publishes
     * them as it does a poll, before it returns; the samples (and string values they point to)
     * stay the plugin's and are not kept. Call it only from wait_events() or read_group() of
     * the instance `ctx` belongs to (its poller thread). 0, or IB_ERR_INVALID (another thread,
     * outside those callbacks, an index out of range, n not the group's n_tags). */
    int (*push_samples)(struct ib_host_ctx *ctx, uint32_t device, uint32_t group,
                        const struct ib_sample *samples, uint32_t n);

    const void *reserved[11]; /* later minors' functions; check size/abi_minor first */
};

/* ---- The descriptor ------------------------------------------------------------------------- */

/* Defined once per plugin with IB_PLUGIN_DEFINE, const, with static storage: it and everything it
 * points to (strings, schemas) must live as long as the shared object is loaded. */
struct ib_plugin {
    uint16_t abi_major; /* IB_ABI_MAJOR the plugin was built against */
    uint16_t abi_minor; /* IB_ABI_MINOR the plugin was built against */
    uint32_t size;      /* sizeof(struct ib_plugin) the plugin was built with */

    const char *name;        /* what `plugin:` in the config names, [a-z0-9_]+ */
    const char *version;     /* the plugin's own version */
    const char *description; /* one line; optional (NULL) */

    /* Required, static (an empty schema is {0, 0, NULL, {0}}). */
    const struct ib_schema *connection_schema; /* required */
    const struct ib_schema *device_schema;     /* required */
    const struct ib_schema *tag_schema;        /* required */

    /* Build an instance from a validated configuration; do no I/O here (--check calls it).
     * Semantic errors go to host->config_error() and make it return IB_ERR_INVALID.
     * On success *instance is set and owned by the daemon until destroy(); on failure nothing
     * is allocated. `host` and `ctx` stay valid until destroy() returns. Required. */
    int (*create)(const struct ib_host *host, struct ib_host_ctx *ctx,
                  const struct ib_connection_config *cfg, void **instance);

    /* Free everything of the instance; accepts NULL. close() has been called. Required. */
    void (*destroy)(void *instance);

    /* Open the transport (connect). 0 or an ib_err; on failure the daemon retries with capped,
     * jittered back-off and reports the connection's tags bad (connection lost). Required. */
    int (*open)(void *instance);

    /* Close the transport; safe to call when already closed. Required. */
    void (*close)(void *instance);

    /* Read one group of one device and fill `samples[0 .. n_tags-1]`, one per tag in config
     * order, every one of them, on success and on failure (bad samples carry their reason).
     * `samples` is the daemon's, valid only during the call (it comes prefilled as bad,
     * IB_R_INTERNAL, so a forgotten sample never repeats an old value). String values point into
     * the plugin's memory (see ib_value.v.s).
     * Returns 0, or IB_ERR_CONNECTION when the transport must be closed and reopened, or another
     * ib_err describing the worst failure (samples still filled), worst first: IB_ERR_CONNECTION,
     * IB_ERR_PROTOCOL, IB_ERR_TIMEOUT, IB_ERR_EXCEPTION. A value that merely cannot be decoded
     * (its sample bad with IB_R_DECODE) is not a failure of the device: return 0. Required. */
    int (*read_group)(void *instance, uint32_t device, uint32_t group, struct ib_sample *samples);

    /* Write one tag of a device (indices as in the config). The daemon has already undone the
     * tag's scaling; the value may come as IB_V_BOOL, IB_V_INT, IB_V_UINT or IB_V_DOUBLE and the
     * plugin converts it to the tag's wire type, refusing what does not fit with IB_ERR_INVALID
     * (out of range, a fraction for an integer type). A string tag's value may also come as
     * IB_V_STRING (UTF-8 bytes, v.s.len of them, not NUL-terminated; valid only during the
     * call): the plugin converts it to the tag's encoding and refuses what does not fit (too
     * long, a character the encoding lacks, not UTF-8) with IB_ERR_INVALID; a plugin refuses an
     * IB_V_STRING for a tag that is not text, and any type it cannot write, with IB_ERR_INVALID.
     * IB_ERR_DENIED for a tag that is not writable. Only called on the poller thread, between
     * polls. `value` is the daemon's, valid only during the call. Optional (NULL). */
    int (*write_tag)(void *instance, uint32_t device, uint32_t group, uint32_t tag,
                     const struct ib_value *value);

    /* ABI 1.1, optional (NULL: as in 1.0). Called on the poller thread, while the connection
     * is open, when no poll is due: wait for the device's own events until `deadline_ms` (the
     * host's monotonic_ms() clock; never more than 1 s ahead, and well within the call
     * deadline) and hand what arrives to host->push_samples(). Return at the deadline at the
     * latest (earlier is fine): 0, or IB_ERR_CONNECTION when the transport must be closed and
     * reopened (the daemon then reports the connection's tags bad, as for read_group()), or
     * IB_ERR_UNSUPPORTED when this connection has nothing to wait for (not called again until
     * it is reopened; the poller sleeps instead). */
    int (*wait_events)(void *instance, int64_t deadline_ms);

    /* ABI 1.1, optional (NULL: no group keys). The plugin's own keys of a group (beside name,
     * interval_ms, tags); the filled struct arrives as ib_group_config.params. */
    const struct ib_schema *group_schema;

    const void *reserved[6]; /* zero; a later minor may give them meanings (zero: as before) */
};

#if defined(__GNUC__)
#define IB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define IB_PLUGIN_EXPORT
#endif

/* Define the exported descriptor:
 *   IB_PLUGIN_DEFINE(.name = "modbus", .version = "1.0", ..., .create = mb_create, ...);
 * Build plugins with -fvisibility=hidden so that this is their only exported symbol. */
#define IB_PLUGIN_DEFINE(...)                                                                      \
    IB_PLUGIN_EXPORT const struct ib_plugin ironbridge_plugin = {.abi_major = IB_ABI_MAJOR,        \
                                                                 .abi_minor = IB_ABI_MINOR,        \
                                                                 .size = sizeof(struct ib_plugin), \
                                                                 __VA_ARGS__}

#endif
