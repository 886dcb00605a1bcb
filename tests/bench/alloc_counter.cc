// alloc_counter.cc — libka_alloc_counter.so, preloaded by the cost benchmark
// next to libkeepalive (and alone, for the runs without it): counts every
// heap allocation call of the process (malloc, calloc, realloc, the aligned
// forms; free is not counted). churn.cc reads the count around its connection
// loop through ka_alloc_count(), found with dlsym, so that allocations of the
// program's own start-up are not charged to the library.
//
// Each function forwards to glibc's __libc_* implementation: no dlsym, so no
// recursion and nothing to resolve before the first call. Glibc routes its
// internal allocations (stdio buffers, dlerror state, ...) through these
// symbols too, so allocations libkeepalive makes indirectly are counted.

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

extern "C" {
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t alignment, size_t size);
}

namespace {

unsigned long allocations;

void count_one() { __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED); }

bool valid_alignment(size_t alignment) {
  return alignment != 0 && (alignment & (alignment - 1)) == 0;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) unsigned long ka_alloc_count(void) {
  return __atomic_load_n(&allocations, __ATOMIC_RELAXED);
}

__attribute__((visibility("default"))) void *malloc(size_t size) {
  count_one();
  return __libc_malloc(size);
}

__attribute__((visibility("default"))) void *calloc(size_t count, size_t size) {
  count_one();
  return __libc_calloc(count, size);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t size) {
  count_one();
  return __libc_realloc(p, size);
}

__attribute__((visibility("default"))) void free(void *p) { __libc_free(p); }

__attribute__((visibility("default"))) void *memalign(size_t alignment, size_t size) {
  count_one();
  return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) void *aligned_alloc(size_t alignment, size_t size) {
  count_one();
  if (!valid_alignment(alignment)) {
    errno = EINVAL;
    return nullptr;
  }
  return __libc_memalign(alignment, size);
}

__attribute__((visibility("default"))) int posix_memalign(void **out, size_t alignment,
                                                          size_t size) {
  count_one();
  if (!valid_alignment(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
  void *p = __libc_memalign(alignment, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((visibility("default"))) void *valloc(size_t size) {
  count_one();
  return __libc_memalign(static_cast<size_t>(getpagesize()), size);
}

}  // extern "C"
