/* Traps (an unreachable instruction): the attempt fails with trap. */
int main(void) {
    __builtin_trap();
}
