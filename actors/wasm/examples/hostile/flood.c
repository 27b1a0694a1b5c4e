/* Writes without end: the write past the job's output_bytes traps
 * (output_limit). */
#include <stdio.h>

int main(void) {
    for (;;) fputs("flood flood flood flood flood flood flood flood\n", stdout);
}
