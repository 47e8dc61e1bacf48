/* Small shared helpers of the daemon: a bump arena for configuration memory, a growable byte
 * buffer for encoding, and clock helpers. */
#ifndef IB_UTIL_H
#define IB_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* An arena frees everything it handed out at once (a configuration and all its strings). */
struct ib_arena {
    struct ib_arena_chunk *chunks;
};

/* Zeroed memory owned by the arena; aborts on out-of-memory (configuration time only).
 * ib_arena_alloc aligns for any type; ib_arena_alloc_align to `align` (a power of two, at most
 * alignof(max_align_t)). Strings are not aligned at all. */
void *ib_arena_alloc(struct ib_arena *a, size_t size);
void *ib_arena_alloc_align(struct ib_arena *a, size_t size, size_t align);
char *ib_arena_strdup(struct ib_arena *a, const char *s);
char *ib_arena_strndup(struct ib_arena *a, const char *s, size_t n); /* n bytes of s, then NUL */
char *ib_arena_printf(struct ib_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ib_arena_free(struct ib_arena *a);

/* A growable buffer; `p` is always NUL-terminated when cap > 0. Reused across polls so that
 * the hot path allocates only when a message grows past every earlier one. */
struct ib_buf {
    char *p;
    size_t len, cap;
};

int ib_buf_reserve(struct ib_buf *b, size_t extra);
int ib_buf_append(struct ib_buf *b, const void *data, size_t n);
int ib_buf_puts(struct ib_buf *b, const char *s);
int ib_buf_printf(struct ib_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ib_buf_free(struct ib_buf *b);
static inline void ib_buf_reset(struct ib_buf *b)
{
    b->len = 0;
    if (b->cap)
        b->p[0] = '\0';
}

/* The absolute CLOCK_MONOTONIC time `ms` from now, for pthread_cond_timedwait on a condition
 * made by ib_cond_init_monotonic (immune to wall-clock jumps). */
struct timespec ib_deadline_ms(int64_t ms);
int ib_cond_init_monotonic(pthread_cond_t *cv);
/* Names a thread for top -H, ps -L and perf: "ib-<what>" then as much of `name` (may be NULL)
 * as fits in the kernel's 15 characters. */
void ib_thread_name(pthread_t t, const char *what, const char *name);

int64_t ib_now_ms(void);       /* CLOCK_REALTIME, ms since the epoch */
int64_t ib_monotonic_ms(void); /* CLOCK_MONOTONIC, ms */

/* Give back the pages of the calling thread's stack below the current frame (a page is kept
 * below it): a deep call leaves them resident for the thread's life otherwise. Threads made
 * by pthread_create only. */
void ib_stack_trim(void);

/* Capped exponential back-off with full jitter: a delay in [min, min(max, min * 2^attempt)]. */
int64_t ib_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, uint64_t *rng);
uint64_t ib_util_rand64(uint64_t *state);

#endif
