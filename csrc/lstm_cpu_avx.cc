// The fused CPU LSTM kernel compiled for AVX without AVX2 or FMA (Intel Sandy Bridge and Ivy
// Bridge, AMD before Piledriver): jaxlib needs AVX, so every x86 CPU that runs JAX has at least
// this level, and the generic one (4-float SSE2 vectors) was measured slower than the pure-JAX
// scan there (BENCHMARKS.md). Run only on a CPU that has AVX (lstm_cpu.cc checks at load time).
// See lstm_cpu_kernel.h.

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstdint>

#include "lstm_cpu_common.h"

// Every function from here on is compiled for this level, whatever the command line says.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx")
#endif

#define MUSAE_LSTM_ISA_AVX 1
#define MUSAE_LSTM_ISA_NAME "avx"
#define MUSAE_LSTM_KERNELS kAvxKernels
#include "lstm_cpu_kernel.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
