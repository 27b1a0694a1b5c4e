/* A checksum of stdin: "crc32 XXXXXXXX bytes N" (CRC-32/ISO-HDLC, the one
 * of zlib and Ethernet).
 *
 * Build: clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -o checksum.wasm checksum.c
 */
#include <stdint.h>
#include <stdio.h>

/* Static, not on the stack: a WebAssembly module's stack is 64 KiB by
 * default, and a buffer that size on it overruns into the data. */
static unsigned char buf[65536];

int main(void) {
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    unsigned long long bytes = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        for (size_t i = 0; i < n; i++) crc = table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
        bytes += n;
    }
    printf("crc32 %08x bytes %llu\n", crc ^ 0xFFFFFFFFu, bytes);
    return 0;
}
