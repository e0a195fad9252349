#include "CSpoolTestShims.h"
#include <malloc.h>

size_t spool_test_heap_in_use(void) {
    malloc_trim(0);
    return mallinfo2().uordblks;
}
