/* hello: the multiubuntu image's small test program (armlet's own): prints a greeting. */
#include <stdio.h>

int main(void)
{
    puts("hello from armlet's multiubuntu-equivalent container");
    return 0;
}
