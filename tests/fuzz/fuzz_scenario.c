/*
 * libFuzzer harness for the simulator's scenario files (routing/sim.c,
 * sr_sim_set), read with inih as `skyroute sim` reads them.
 *
 * Every key goes to sr_sim_set() except [constellation] elements, which names
 * a file (the CLI's business). Whatever the input, a refused key must come
 * with a message, and that message must name the key (or say it is unknown);
 * nothing may crash, leak or read out of bounds. Preparing a scenario is left
 * out: a valid one may ask for 20,000 satellites over a week, which is slow
 * by design, not a parser's fault.
 */
#include <ini.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routing/routing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_key(void *user, const char *section, const char *key, const char *value)
{
    sr_sim *sim = user;
    if (!strcmp(section, "constellation") && !strcmp(key, "elements")) {
        return 1;
    }
    char err[300];
    memset(err, 'x', sizeof(err));
    if (sr_sim_set(sim, section, key, value, err, sizeof(err)) != 0) {
        size_t kl = strlen(key);
        if (!memchr(err, 0, sizeof(err)) || !err[0] ||
            !((!strncmp(err, key, kl) && err[kl] == ':') || !strncmp(err, "unknown key", 11))) {
            abort(); /* a refusal that does not say which key, or no message at all */
        }
        return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    sr_sim *sim = NULL;
    if (!text || sr_sim_new(&sim) != 0) {
        free(text);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = 0;
    (void)ini_parse_string(text, on_key, sim);
    sr_sim_free(sim);
    free(text);
    return 0;
}
