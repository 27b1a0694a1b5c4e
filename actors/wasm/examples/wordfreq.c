/* Word frequencies: stdin is text; stdout has one line per distinct word,
 * "COUNT WORD", most frequent first, ties by word (byte order). A word is
 * a run of ASCII letters and digits, lowercased. argv[1], when given, keeps
 * only the first N lines.
 *
 * Build (Debian: clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32):
 *   clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -o wordfreq.wasm wordfreq.c
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *word;
    size_t count;
};

static struct entry *table;
static size_t capacity = 1024, used;

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void grow(void);

static void add(const char *w, size_t n) {
    if (2 * (used + 1) > capacity) grow();
    size_t i = hash(w, n) & (capacity - 1);
    while (table[i].word) {
        if (strlen(table[i].word) == n && memcmp(table[i].word, w, n) == 0) {
            table[i].count++;
            return;
        }
        i = (i + 1) & (capacity - 1);
    }
    table[i].word = strndup(w, n);
    if (!table[i].word) { fputs("out of memory\n", stderr); exit(3); }
    table[i].count = 1;
    used++;
}

static void grow(void) {
    struct entry *old = table;
    size_t old_capacity = capacity;
    capacity = old ? capacity * 2 : capacity;
    table = calloc(capacity, sizeof *table);
    if (!table) { fputs("out of memory\n", stderr); exit(3); }
    used = 0;
    for (size_t i = 0; old && i < old_capacity; i++) {
        if (!old[i].word) continue;
        size_t j = hash(old[i].word, strlen(old[i].word)) & (capacity - 1);
        while (table[j].word) j = (j + 1) & (capacity - 1);
        table[j] = old[i];
        used++;
    }
    free(old);
}

static int by_count_then_word(const void *a, const void *b) {
    const struct entry *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

int main(int argc, char **argv) {
    size_t limit = argc > 1 ? strtoul(argv[1], NULL, 10) : (size_t)-1;
    grow();
    char word[256];
    size_t n = 0;
    int c;
    while ((c = getchar()) != EOF) {
        if (isascii(c) && isalnum(c)) {
            if (n < sizeof word) word[n++] = (char)tolower(c);
        } else if (n) {
            add(word, n);
            n = 0;
        }
    }
    if (n) add(word, n);
    size_t k = 0;
    for (size_t i = 0; i < capacity; i++)
        if (table[i].word) table[k++] = table[i];
    qsort(table, k, sizeof *table, by_count_then_word);
    for (size_t i = 0; i < k && i < limit; i++) printf("%zu %s\n", table[i].count, table[i].word);
    return 0;
}
