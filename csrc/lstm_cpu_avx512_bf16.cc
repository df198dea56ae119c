// The fused CPU LSTM kernel's bf16 matmuls compiled for AVX512-BF16 (VDPBF16PS; GCC's
// -mavx512bf16 implies AVX512BW), with AVX512F, AVX2 and FMA; run only on a CPU that has them
// (lstm_cpu.cc checks at load time and takes this level's float32 code from the AVX-512 build).
// See lstm_cpu_kernel.h.

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstdint>

#include "lstm_cpu_common.h"

// Every function from here on is compiled for this level, whatever the command line says.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16,avx2,fma")
#endif

#define MUSAE_LSTM_ISA_AVX512 1
#define MUSAE_LSTM_BF16 1
#define MUSAE_LSTM_ISA_NAME "avx512_bf16"
#define MUSAE_LSTM_KERNELS kAvx512Bf16Kernels
#include "lstm_cpu_kernel.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
