/*
 * Envelope ids (sr_envelope_new_id(), crypto.h): 16 random bytes each.
 *
 * Ids come from a per-thread pool of 4 KiB of random bytes, refilled from the
 * kernel's generator with one getrandom() call per refill, not per id
 * (randombytes_buf() asks for 256 bytes at a time: 16 system calls per
 * refill). Each pool byte is handed out once and wiped as it goes. A child
 * made by fork() starts with an empty pool (pthread_atfork), so parent and
 * child never hand out the same ids.
 */
#include "crypto/crypto.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <sodium.h>

#define SR_ID_POOL 4096

static _Thread_local uint8_t id_pool[SR_ID_POOL];
static _Thread_local size_t id_left;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_pool_forget(void)
{
    sodium_memzero(id_pool, sizeof(id_pool));
    id_left = 0;
}

static void id_pool_init(void)
{
    /* if this fails the pool still works; only fork safety is lost, and the
     * daemons do not call this after fork */
    (void)pthread_atfork(NULL, NULL, id_pool_forget);
}

static void id_pool_fill(void)
{
    size_t got = 0;
    while (got < sizeof(id_pool)) {
        ssize_t n = getrandom(id_pool + got, sizeof(id_pool) - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue; /* a signal before any bytes */
        } else {
            /* no getrandom() (ENOSYS): libsodium's own way to the kernel */
            randombytes_buf(id_pool + got, sizeof(id_pool) - got);
            break;
        }
    }
    id_left = sizeof(id_pool);
}

void sr_envelope_new_id(uint8_t id[SR_ENV_IDBYTES])
{
    (void)pthread_once(&id_once, id_pool_init);
    if (id_left < SR_ENV_IDBYTES) {
        id_pool_fill();
    }
    uint8_t *p = id_pool + sizeof(id_pool) - id_left;
    memcpy(id, p, SR_ENV_IDBYTES);
    sodium_memzero(p, SR_ENV_IDBYTES);
    id_left -= SR_ENV_IDBYTES;
}
