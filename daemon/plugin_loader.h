/* Plugin loading: dlopen a shared object by name from the plugin directory, find its one
 * exported descriptor and check its ABI before anything of it is called. */
#ifndef IB_PLUGIN_LOADER_H
#define IB_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ironbridge/plugin.h>

struct ib_plugin_registry;

/* Returns NULL on out-of-memory. `dir` is copied. `fixed`: the directory was chosen by the
 * command line and a configuration's plugin_dir does not replace it. Free with ib_plugins_free
 * (accepts NULL). */
struct ib_plugin_registry *ib_plugins_new(const char *dir, bool fixed);
/* Use `dir` instead, unless the directory is fixed or a plugin was already loaded from the old
 * one. Returns 0 if applied, -1 if not. */
int ib_plugins_prefer_dir(struct ib_plugin_registry *r, const char *dir);
void ib_plugins_free(struct ib_plugin_registry *r);
const char *ib_plugins_dir(const struct ib_plugin_registry *r);

/* Load (once) and return the plugin `name`. On failure returns NULL and writes a message for a
 * person into err (what failed, which file, what to do). The descriptor stays valid until
 * ib_plugins_free(). */
const struct ib_plugin *ib_plugins_get(struct ib_plugin_registry *r, const char *name, char *err,
                                       size_t errlen);

/* Load every *.so in the directory (for --list-plugins); failures are reported through err_cb. */
typedef void (*ib_plugin_visit_fn)(const char *path, const struct ib_plugin *p, const char *err,
                                   void *ud);
void ib_plugins_scan(struct ib_plugin_registry *r, ib_plugin_visit_fn fn, void *ud);

/* The ABI check alone: 0 if the daemon can use `p`, else -1 with a message naming both
 * versions. `path` is only used in the message. */
int ib_plugin_check(const struct ib_plugin *p, const char *path, char *err, size_t errlen);

/* The same against a host at ABI 1.`host_minor` whose minor m needs a descriptor of
 * `size_for_minor[m]` bytes (m = 0 .. host_minor): how the checks are tested for minors this
 * daemon does not have yet (docs/plugin-abi.md). Fields a plugin of an older minor lacks are
 * never read: the daemon reads a field only if p->size covers it. */
int ib_plugin_check_abi(const struct ib_plugin *p, const char *path, unsigned host_minor,
                        const uint32_t *size_for_minor, char *err, size_t errlen);

/* The ABI 1.1 fields of a checked descriptor, NULL for a 1.0 plugin (whose slots are reserved
 * and not read). Any thread. */
static inline int (*ib_plugin_wait_events(const struct ib_plugin *p))(void *, int64_t)
{
    return p->abi_minor >= 1 ? p->wait_events : NULL;
}
static inline const struct ib_schema *ib_plugin_group_schema(const struct ib_plugin *p)
{
    return p->abi_minor >= 1 ? p->group_schema : NULL;
}

/* The plugin directory to use when neither --plugin-dir nor the config names one: the build
 * tree's when this binary runs from the build tree, the installed one otherwise. */
const char *ib_plugins_default_dir(void);

#endif
