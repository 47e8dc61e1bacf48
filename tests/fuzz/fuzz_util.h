/* fuzz_util.h: what the fuzz targets share: the libFuzzer entry points they define, a private
 * scratch directory (on tmpfs when there is one), and writing an input to a file in it. */
#ifndef IB_FUZZ_UTIL_H
#define IB_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Defined by every target; libFuzzer calls them, and so does replay.c in the normal build. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's scratch directory, created at the first call (under /dev/shm when it exists,
 * else $TMPDIR or /tmp) and removed at exit. Never NULL: aborts when it cannot be made. */
const char *fz_dir(void);

/* fz_dir()/name into buf (aborts when it does not fit). */
const char *fz_path(char *buf, size_t len, const char *name);

/* Write n bytes of p to fz_dir()/name (replacing it); aborts on an I/O error. Returns the path
 * (static storage of the call's caller: copy it before the next call). */
void fz_write(const char *path, const void *p, size_t n);

/* Remove every entry of the directory `path` (not recursing; the directory stays). */
void fz_clear_dir(const char *path);

#endif
