/* Allocates without end: the sandbox refuses the memory growth past the
 * job's memory_bytes (memory_limit), whatever the module does next. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each block is kept reachable, or the compiler drops the allocations. */
static char *volatile last;

int main(void) {
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) {
            fputs("malloc failed\n", stderr);
            return 1;
        }
        memset(p, 1, 1 << 20);
        last = p;
    }
}
