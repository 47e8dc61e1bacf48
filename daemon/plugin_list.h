/* --list-plugins: every plugin of the plugin directory with its version, ABI and configuration
 * schema, as text or as the Markdown of docs/plugins/. */
#ifndef IB_PLUGIN_LIST_H
#define IB_PLUGIN_LIST_H

#include <stdbool.h>

#include "plugin_loader.h"

/* Print the plugins of `plugins` (only `only` when not NULL) to stdout; refusals to stderr.
 * Returns the exit status: 0, or 1 when a plugin was refused or `only` was not found. */
int ib_plugin_list(struct ib_plugin_registry *plugins, const char *only, bool markdown,
                   const char *dir);

#endif
