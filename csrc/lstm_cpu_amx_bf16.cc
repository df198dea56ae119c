// The fused CPU LSTM kernel's bf16 matmuls on AMX-BF16 tiles (TDPBF16PS; Intel Xeon from
// Sapphire Rapids on), with the AVX512-BF16 level's vector code around them; run only on a CPU
// that has both and an operating system that grants the process the tile data state (lstm_cpu.cc
// checks and asks at load time, and takes this level's float32 code from the AVX-512 build).
// See lstm_cpu_kernel.h.

#include "lstm_cpu_common.h"

#if defined(MUSAE_LSTM_HAVE_AMX)

#include <immintrin.h>

#include <cstdint>

// Every function from here on is compiled for this level, whatever the command line says.
#if defined(__clang__)
#pragma clang attribute push(                                                           \
    __attribute__((target("avx512f,avx512bw,avx512bf16,avx2,fma,amx-tile,amx-bf16"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16,avx2,fma,amx-tile,amx-bf16")
#endif

#define MUSAE_LSTM_ISA_AVX512 1
#define MUSAE_LSTM_BF16 1
#define MUSAE_LSTM_AMX 1
#define MUSAE_LSTM_ISA_NAME "amx_bf16"
#define MUSAE_LSTM_KERNELS kAmxBf16Kernels
#include "lstm_cpu_kernel.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // MUSAE_LSTM_HAVE_AMX
