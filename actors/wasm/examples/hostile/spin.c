/* Runs forever: stopped by its fuel (cpu_limit) or its wall time
 * (time_limit), whichever the job sets lower. */
int main(void) {
    volatile unsigned long long x = 0;
    for (;;) x++;
}
