/* qemu-tests/bench-prog/true.c: the small static program that qemu-tests/bench's exec
 * loop runs (/bench/true): exits 0. */
int main(void)
{
    return 0;
}
