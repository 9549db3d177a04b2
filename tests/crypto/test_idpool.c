/*
 * crypto/idpool.c: envelope ids from the per-thread pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, SR_ENV_IDBYTES);
}

/* Ids come from a pool refilled every 256 ids: none repeats across refills,
 * and a forked child does not hand out its parent's next ids. */
static void test_new_id_pool(void **state)
{
    (void)state;
    enum { N = 2000 };
    uint8_t(*ids)[SR_ENV_IDBYTES] = malloc(N * SR_ENV_IDBYTES);
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        sr_envelope_new_id(ids[i]);
    }
    qsort(ids, N, SR_ENV_IDBYTES, id_cmp);
    for (size_t i = 1; i < N; i++) {
        assert_memory_not_equal(ids[i - 1], ids[i], SR_ENV_IDBYTES);
    }
    free(ids);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t c[SR_ENV_IDBYTES];
        sr_envelope_new_id(c);
        _exit(write(fds[1], c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
    }
    uint8_t mine[SR_ENV_IDBYTES], child[SR_ENV_IDBYTES];
    sr_envelope_new_id(mine);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_memory_not_equal(mine, child, SR_ENV_IDBYTES);
    close(fds[0]);
    close(fds[1]);
}

/* The root cache holds the last 64 roots, newest first: a batch's envelopes
 * hit it, an evicted root is verified again (and still opens). */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_id_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
