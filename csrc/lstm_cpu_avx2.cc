// The fused CPU LSTM kernel compiled for AVX2 with FMA; run only on a CPU
// that has them (lstm_cpu.cc checks at load time). See lstm_cpu_kernel.h.

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstdint>

#include "lstm_cpu_common.h"

// Every function from here on is compiled for this level, whatever the command line says.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#define MUSAE_LSTM_ISA_AVX2 1
#define MUSAE_LSTM_ISA_NAME "avx2"
#define MUSAE_LSTM_KERNELS kAvx2Kernels
#include "lstm_cpu_kernel.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
