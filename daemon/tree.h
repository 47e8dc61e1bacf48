/* The configuration tree as the daemon runs it: the files plus the applied signed document kept
 * in the state directory (docs/remote-config.md). Main thread (or the reload's loader thread). */
#ifndef IB_TREE_H
#define IB_TREE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "remote.h"

/* A new signed document to validate in place of the kept one. Borrowed. */
struct ib_tree_doc {
    const char *name; /* NAME.yaml (remote_config.file) */
    const char *text; /* the file's text as it will be written (ib_remote_file_text) */
    uint64_t version;
};

struct ib_tree_info {
    char remote_dir[4096];   /* where applied documents are kept */
    char remote_path[4352];  /* the document in the tree ("" when none) */
    uint64_t remote_version; /* its version (0: none), the replay bound */
    bool kept;               /* a kept document is part of the tree */
};

/* ib_config_load_ex of `path` with the kept document (or `doc`, when not NULL) standing for
 * conf.d/NAME; errors in `diag` as ever (a kept document's name its real path). A state
 * directory this user may not read is warned about and left out. Returns the configuration or
 * NULL; `info` is filled either way. */
struct ib_config *ib_tree_load(const char *path, struct ib_plugin_registry *plugins,
                               struct ib_diag *diag, const struct ib_tree_doc *doc,
                               struct ib_tree_info *info);

#endif
