/* vessel-img: placeholder until the disk-image issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "vessel-img: not built yet\n"); return 1; }
