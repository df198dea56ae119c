// The fused CPU LSTM kernel's bf16 matmuls compiled for AVX512-BF16 (VDPBF16PS; GCC's
// -mavx512bf16 implies AVX512BW), with AVX512F, AVX2 and FMA; run only on a CPU that has them
// (lstm_cpu.cc checks at load time and takes this level's float32 code from the AVX-512 build).
// See lstm_cpu_kernel.h.

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <chrono>
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

namespace musae_lstm_cpu {
namespace {

// Independent accumulators per loop: enough to hide either instruction's latency (4-6 cycles)
// at up to two issued a cycle.
#define MUSAE_PROBE_ACCUMULATORS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// Seconds for `iterations` x 12 dependent-chain FMAs (kFma) or VDPBF16PSs on 512-bit registers.
// The empty asm statements keep every accumulator in a register and every instruction in the
// loop (the compiler may neither fold the chains nor drop them).
template <bool kBf16>
double ProbeSeconds(int64_t iterations) {
  const __m512 x = _mm512_set1_ps(1e-7f), y = _mm512_set1_ps(1.0f);
  const __m512bh xb = _mm512_cvtne2ps_pbh(x, x), yb = _mm512_cvtne2ps_pbh(y, y);
#define MUSAE_DECLARE(i) __m512 acc##i = _mm512_setzero_ps();
  MUSAE_PROBE_ACCUMULATORS(MUSAE_DECLARE)
#undef MUSAE_DECLARE
  const auto start = std::chrono::steady_clock::now();
  for (int64_t n = 0; n < iterations; ++n) {
#define MUSAE_STEP(i)                                                      \
  acc##i = kBf16 ? _mm512_dpbf16_ps(acc##i, xb, yb) : _mm512_fmadd_ps(x, y, acc##i); \
  __asm__ volatile("" : "+v"(acc##i));
    MUSAE_PROBE_ACCUMULATORS(MUSAE_STEP)
#undef MUSAE_STEP
  }
  const auto stop = std::chrono::steady_clock::now();
  __m512 sum = _mm512_setzero_ps();
#define MUSAE_SUM(i) sum = _mm512_add_ps(sum, acc##i);
  MUSAE_PROBE_ACCUMULATORS(MUSAE_SUM)
#undef MUSAE_SUM
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return std::chrono::duration<double>(stop - start).count();
}

#undef MUSAE_PROBE_ACCUMULATORS

}  // namespace

double Avx512Bf16DotSpeedup() {
  // A VDPBF16PS does 32 multiply-adds (16 pairs), an FMA 16. Warm up first (the core may run
  // 512-bit instructions at a lower clock only after a while), then alternate short loops and
  // keep each one's fastest: another thread stealing the core slows single loops, not minima.
  constexpr int64_t kIterations = 2048;  // ~10-50 microseconds a loop
  ProbeSeconds<false>(16 * kIterations);
  double fma = 1e30, bf16 = 1e30;
  for (int round = 0; round < 8; ++round) {
    fma = std::min(fma, ProbeSeconds<false>(kIterations));
    bf16 = std::min(bf16, ProbeSeconds<true>(kIterations));
  }
  return 2.0 * fma / bf16;
}

}  // namespace musae_lstm_cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif  // x86
