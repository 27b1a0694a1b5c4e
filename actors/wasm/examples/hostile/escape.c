/* Tries to reach the host's files: the sandbox gives no preopened
 * directory, so every open fails, and the module exits with its own code
 * and says why on stderr (exit: code 2; stderr: ...). A module cannot open
 * a socket at all under WASI preview 1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    const char *paths[] = {"/etc/passwd", "./secret", "../../etc/hostname"};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(paths[i], "r");
        if (f) {
            puts("escaped");
            return 0;
        }
        fprintf(stderr, "open %s: %s\n", paths[i], strerror(errno));
    }
    return 2;
}
