// Declarations shared by the fused CPU LSTM's dispatcher (lstm_cpu.cc) and its per-ISA kernel
// builds (lstm_cpu_amx_bf16.cc, lstm_cpu_avx512_bf16.cc, lstm_cpu_avx512.cc, lstm_cpu_avx2.cc,
// lstm_cpu_avx.cc, lstm_cpu_generic.cc, each compiling lstm_cpu_kernel.h for one instruction
// set). Plain data only: no code lives here, so that no inline function or template instance
// can be emitted by a translation unit compiled for a wider instruction set and then picked by
// the linker for the others.

#ifndef MUSAE_JAX_CSRC_LSTM_CPU_COMMON_H_
#define MUSAE_JAX_CSRC_LSTM_CPU_COMMON_H_

#include <cstdint>

// Whether this build has the amx_bf16 level: x86-64 and a compiler with the AMX intrinsics (GCC
// 11, clang 12 on); older compilers (or -DMUSAE_LSTM_NO_AMX) build the other levels.
#if defined(__x86_64__) && !defined(MUSAE_LSTM_NO_AMX) &&  \
    ((defined(__clang__) && __clang_major__ >= 12) ||       \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define MUSAE_LSTM_HAVE_AMX 1
#endif

namespace musae_lstm_cpu {

constexpr int kGates = 4;
constexpr int kCacheLineFloats = 16;  // floats in a 64-byte cache line

struct Shape {
  int64_t groups;  // independent recurrences (leading dimensions)
  int64_t steps;
  int64_t batch;
  int64_t hidden;
};

struct ForwardArgs {
  Shape shape;
  bool reverse;
  bool constant_input;
  const float* x_proj;
  const float* bias;  // [4H] a recurrence, added to x_proj at every step
  const float* w_hh;
  const float* h0;
  const float* c0;
  float* hs;
  float* cs;
  float* gates;  // activated gates for the backward pass; null when not kept
};

struct BackwardArgs {
  Shape shape;
  bool reverse;
  const float* w_hh;
  const float* h0;
  const float* hs;
  const float* gates;  // activated, from the forward pass
  const float* cs;
  const float* c0;
  const float* d_hs;
  const float* d_h_last;
  const float* d_c_last;
  float* d_pre;    // gradient of the pre-activation gates [T, B, 4H] (= of x_proj per step)
  float* d_x_sum;  // sum over time of d_pre [B, 4H] for a constant input, else null
  float* d_w_hh;
  float* d_bias;  // [4H] a recurrence: the sum of d_pre over steps and rows
  float* d_h0;
  float* d_c0;
};

// One compiled instruction-set level of the kernel. The dispatcher owns threads and memory: it
// repacks w_hh once per call into a buffer of the size the level asks for (each thread packing a
// range of hidden units), and the row functions of every thread then read that one copy.
struct Kernels {
  const char* name;   // "amx_bf16", "avx512_bf16", "avx512", "avx2", "avx", "generic"
  int vector_width;   // float lanes; the hidden size must be a multiple
  int rows_per_tile;  // batch rows of one register tile
  int64_t (*forward_packed_floats)(int64_t hidden);
  // Packs what w_hh's rows [unit_begin, unit_end) (its input units) contribute to the forward
  // layout.
  void (*forward_pack)(const float* w_hh, int64_t hidden, int64_t unit_begin, int64_t unit_end,
                       float* packed);
  void (*forward_rows)(const ForwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end,
                       const float* packed);
  int64_t (*backward_packed_floats)(int64_t hidden);
  // Packs w_hh's rows [unit_begin, unit_end) (the hidden outputs of the backward matmul) into the
  // backward layout; the range that ends at `hidden` also writes the last panel's zero padding.
  void (*backward_pack)(const float* w_hh, int64_t hidden, int64_t unit_begin, int64_t unit_end,
                        float* packed);
  void (*backward_rows)(const BackwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end,
                        const float* packed);
  // The recurrent weight gradient's rows [unit_begin, unit_end); the range that starts at 0 also
  // writes the bias gradient.
  void (*weight_grad_units)(const BackwardArgs& a, int64_t group, int64_t unit_begin,
                            int64_t unit_end);
  // The same five with bf16 operands in the three matmuls (float32 accumulation; packed weights
  // in half the floats of the float32 layouts), or null at a level without bf16 dot instructions.
  void (*forward_pack_bf16)(const float* w_hh, int64_t hidden, int64_t unit_begin,
                            int64_t unit_end, float* packed);
  void (*forward_rows_bf16)(const ForwardArgs& a, int64_t group, int64_t row_begin,
                            int64_t row_end, const float* packed);
  void (*backward_pack_bf16)(const float* w_hh, int64_t hidden, int64_t unit_begin,
                             int64_t unit_end, float* packed);
  void (*backward_rows_bf16)(const BackwardArgs& a, int64_t group, int64_t row_begin,
                             int64_t row_end, const float* packed);
  void (*weight_grad_units_bf16)(const BackwardArgs& a, int64_t group, int64_t unit_begin,
                                 int64_t unit_end);
  int bf16_rows_per_tile;  // rows_per_tile of the bf16 entries (16 with AMX tiles)
};

#if defined(__x86_64__) || defined(__i386__)
// lstm_cpu.cc's amx_bf16 and avx512_bf16 levels take their bf16 entries from these, and their
// float32 ones from kAvx512Kernels.
#if defined(MUSAE_LSTM_HAVE_AMX)
extern const Kernels kAmxBf16Kernels;
#endif
extern const Kernels kAvx512Bf16Kernels;
extern const Kernels kAvx512Kernels;
extern const Kernels kAvx2Kernels;
extern const Kernels kAvxKernels;
// The multiply-adds a second of VDPBF16PS over those of float32 FMAs, both on 512-bit vectors,
// measured now on this core (lstm_cpu_avx512_bf16.cc; run only where that level runs).
double Avx512Bf16DotSpeedup();
#endif
extern const Kernels kGenericKernels;

}  // namespace musae_lstm_cpu

#endif  // MUSAE_JAX_CSRC_LSTM_CPU_COMMON_H_
