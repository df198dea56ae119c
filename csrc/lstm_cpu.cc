// Fused CPU LSTM recurrence for musae_jax, called from JAX through the XLA FFI.
//
// Only the sequential part of an LSTM lives here: given the input projection x_proj (without
// the bias) and the bias, run gates_t = x_proj_t + bias + h_{t-1} @ w_hh over time (forward), and
// walk back over time producing the pre-activation gate gradients (= the gradient of x_proj,
// summed over time for a constant input) and dh/dc of the initial state (backward), then the
// recurrent weight gradient as ONE matmul over all T*B rows, and the bias gradient with it. The
// input projection and its gradient stay in XLA. The bias is added here, not by XLA, because XLA
// would add it in a pass of its own over x_proj ([T, B, 4H]) and reduce its gradient from
// d_x_proj in another.
//
// Why a hand-written kernel: inside an XLA while loop, each step of a [B, H] x [H, 4H] matmul and
// the sigmoid/tanh fusions after it pay a fixed per-iteration cost that dominates at MusAE's sizes.
// Here one step is a register-blocked matmul whose epilogue applies the gate nonlinearities and
// the cell update while the gate values are still in registers: w_hh is repacked once per call
// so that the i, f, g, o columns of the same kVec hidden units sit side by side.
//
// Layout (row-major, time-major like musae_jax.lstm): x_proj [..., T or 1, B, 4H] (1 = the same
// input at every step, read without being copied), bias [..., 4H], w_hh [..., H, 4H], states
// [..., B, H]. Leading dimensions "..." (from jax.vmap) are independent recurrences. Gate order
// is (i, f, g, o).
//
// Threads: batch rows are independent, so the work is cut into (recurrence, row range) units
// with no synchronisation inside a unit, after a first round of units that repack w_hh into the
// one layout they all read (each packing a range of its rows). The calling thread takes units
// from a shared counter and so does one helper task per other thread of XLA's intra-op pool; a
// helper that only starts after every unit is taken returns at once, so nothing ever waits for
// a busy pool.
//
// Instruction sets: the vector code (lstm_cpu_kernel.h) is compiled once per level, AVX-512,
// AVX2 + FMA, AVX and generic (lstm_cpu_avx512.cc, lstm_cpu_avx2.cc, lstm_cpu_avx.cc,
// lstm_cpu_generic.cc), each with its own target attributes, so one build runs on any CPU of its
// architecture; the AVX512-BF16 level adds bf16 matmuls (lstm_cpu_avx512_bf16.cc) to the AVX-512
// level's float32 code, and the AMX-BF16 level the same matmuls on AMX tiles
// (lstm_cpu_amx_bf16.cc). The level is chosen when the library loads, from the CPU's features (the
// widest it can run); the Python side can force another with musae_lstm_cpu_set_isa
// (MUSAE_LSTM_CPU_ISA=amx_bf16|avx512_bf16|avx512|avx2|avx|generic), which refuses a level this CPU
// cannot run.
//
// Numerics: float32 by default; tanh uses the same rational approximation as XLA's CPU backend
// and exp the Cephes polynomial (about 1 ulp), so results match the JAX reference to float32
// rounding. Denormals are flushed, as XLA does in its own generated code. With the attribute
// bf16 (and a level that has bf16 matmuls) the three recurrent matmuls round their operands (h,
// w_hh, d_pre) to bf16, as a bf16 matmul of the JAX reference does, and accumulate in float32;
// operands and results stay float32 arrays. At levels without them, bf16 calls run in float32.

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "lstm_cpu_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace musae_lstm_cpu {
namespace {

// ---------------------------------------------------------------------------------------------
// The instruction-set levels this build has, widest first, and the one in use.

#if defined(__x86_64__) || defined(__i386__)
// AVX-512 with bf16 dot instructions: the AVX-512 level's float32 code itself (so a float32 run
// computes the same bits at either level) and the bf16 matmuls of lstm_cpu_avx512_bf16.cc.
// The AMX-BF16 level likewise, with the bf16 matmuls on AMX tiles (lstm_cpu_amx_bf16.cc).
Kernels WithBf16Entries(const Kernels& bf16) {
  Kernels level = kAvx512Kernels;
  level.name = bf16.name;
  level.forward_pack_bf16 = bf16.forward_pack_bf16;
  level.forward_rows_bf16 = bf16.forward_rows_bf16;
  level.backward_pack_bf16 = bf16.backward_pack_bf16;
  level.backward_rows_bf16 = bf16.backward_rows_bf16;
  level.weight_grad_units_bf16 = bf16.weight_grad_units_bf16;
  level.bf16_rows_per_tile = bf16.bf16_rows_per_tile;
  return level;
}
const Kernels kAvx512Bf16Level = WithBf16Entries(kAvx512Bf16Kernels);
#if defined(MUSAE_LSTM_HAVE_AMX)
const Kernels kAmxBf16Level = WithBf16Entries(kAmxBf16Kernels);
const Kernels* const kLevels[] = {&kAmxBf16Level, &kAvx512Bf16Level, &kAvx512Kernels,
                                  &kAvx2Kernels,  &kAvxKernels,      &kGenericKernels};
#else
const Kernels* const kLevels[] = {&kAvx512Bf16Level, &kAvx512Kernels, &kAvx2Kernels, &kAvxKernels,
                                  &kGenericKernels};
#endif

#if defined(MUSAE_LSTM_HAVE_AMX)
// Whether the CPU has AMX-BF16 tiles (CPUID leaf 7: AMX-BF16 and AMX-TILE), the operating system
// saves their state (XCR0 bits 17 and 18) and Linux grants this process the tile data (asked
// once: the grant is for the whole process; other systems have no such call and are not used).
bool AmxRuns() {
#if defined(__linux__)
  static const bool runs = [] {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = (edx >> 22) & 1, amx_tile = (edx >> 24) & 1;
    if (!__get_cpuid_count(1, 0, &eax, &ebx, &ecx, &edx) || !((ecx >> 27) & 1)) return false;
    unsigned xcr0_low, xcr0_high;
    __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    if (!amx_bf16 || !amx_tile || ((xcr0_low >> 17) & 3) != 3) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return runs;
#else
  return false;
#endif
}
#endif
#else
const Kernels* const kLevels[] = {&kGenericKernels};
#endif

// Whether this CPU (and its operating system, which must save the wider registers) can run a
// level. GCC's and clang's __builtin_cpu_supports read cpuid and check XCR0.
bool CpuRuns(const Kernels& k) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#if defined(MUSAE_LSTM_HAVE_AMX)
  if (&k == &kAmxBf16Level) return CpuRuns(kAvx512Bf16Level) && AmxRuns();
#endif
  if (&k == &kAvx512Bf16Level)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  if (&k == &kAvx512Kernels)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma");
  if (&k == &kAvx2Kernels) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (&k == &kAvxKernels) return __builtin_cpu_supports("avx");
#endif
  return &k == &kGenericKernels;
}

const Kernels* Widest() {
  for (const Kernels* k : kLevels)
    if (CpuRuns(*k)) return k;
  return &kGenericKernels;
}

// Chosen when the library loads; only the Python loader changes it, before any kernel runs (a
// level's vector width decides which hidden sizes JAX sends here).
std::atomic<const Kernels*> g_kernels{Widest()};

const Kernels& Current() { return *g_kernels.load(std::memory_order_relaxed); }

// Saves the floating point control state, sets flush-to-zero and denormals-are-zero, restores.
class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
#elif defined(__aarch64__)
  FlushDenormals() {
    asm volatile("mrs %0, fpcr" : "=r"(saved_));
    asm volatile("msr fpcr, %0" : : "r"(saved_ | (uint64_t{1} << 24)));  // FZ
  }
  ~FlushDenormals() { asm volatile("msr fpcr, %0" : : "r"(saved_)); }

 private:
  uint64_t saved_;
#endif
};

// Uninitialised floats on a cache-line boundary (every element is written before it is read):
// the repacked w_hh, whose vector loads then never straddle two lines (malloc's 16-byte alignment
// made one 32-byte AVX2 load in two do so, and the speed of a run depended on where its buffer
// happened to land), and the pre-activation gradients of a constant input. Not zero-filled: a
// std::vector would write the whole buffer once more before the kernel does.
class FloatBuffer {
 public:
  explicit FloatBuffer(int64_t floats) : storage_(new float[floats + kCacheLineFloats]) {}
  float* data() {
    const uintptr_t address = reinterpret_cast<uintptr_t>(storage_.get());
    const uintptr_t line = kCacheLineFloats * sizeof(float);
    return reinterpret_cast<float*>((address + line - 1) / line * line);
  }

 private:
  std::unique_ptr<float[]> storage_;
};

// ---------------------------------------------------------------------------------------------
// Work sharing over XLA's intra-op thread pool.

struct WorkQueue {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// Rows of one range run in tiles of up to rows_per_tile rows, each reading w_hh once a step.
int64_t TilesPerGroup(int64_t rows, int64_t chunks, int64_t rows_per_tile) {
  int64_t tiles = 0;
  for (int64_t c = 0; c < chunks; ++c)
    tiles += (rows * (c + 1) / chunks - rows * c / chunks + rows_per_tile - 1) / rows_per_tile;
  return tiles;
}

// Runs body(group, begin, end) over ranges of [0, rows) of every group, the caller working too;
// returns when every unit has finished. Rows are split to give every thread a unit, and further,
// up to two units per thread, where that adds no row tile (64 rows on 2 threads: 4 ranges of 16,
// 12 tiles either way; 32 rows: 2 ranges, as 4 ranges of 8 would take 8 tiles instead of 6). A
// helper that starts late (XLA's pool runs other work of the step at the same time) then still
// finds work.
template <typename Body>
void RunUnits(ffi::ThreadPool& pool, int64_t groups, int64_t rows, int64_t rows_per_tile,
              const Body& body) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  int64_t chunks = groups < threads ? (threads + groups - 1) / groups : 1;
  chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, rows / 4));  // >= 4 rows a range
  const int64_t tiles = TilesPerGroup(rows, chunks, rows_per_tile);
  while (groups * chunks < 2 * threads && chunks * 2 <= rows / 4 &&
         TilesPerGroup(rows, chunks * 2, rows_per_tile) <= tiles)
    chunks *= 2;
  const int64_t units = groups * chunks;
  auto queue = std::make_shared<WorkQueue>();
  auto work = [queue, &body, units, chunks, rows]() {
    FlushDenormals flush;
    for (int64_t u = queue->next.fetch_add(1); u < units; u = queue->next.fetch_add(1)) {
      const int64_t group = u / chunks, chunk = u % chunks;
      // Equal row counts: the matmul work of a chunk is proportional to its rows, partial tiles
      // included (16 rows run as 6 + 2 on each of two threads, not 6 on one and 6 + 4 on the other).
      body(group, rows * chunk / chunks, rows * (chunk + 1) / chunks);
      queue->done.fetch_add(1, std::memory_order_release);
    }
  };
  // A helper holds the body by reference; it only touches it after claiming a unit, which can
  // only happen while the caller is still in this function (it waits for all units below). A
  // helper that starts late finds no unit left and returns: nothing waits for a busy pool.
  for (int64_t h = 1; h < std::min(threads, units); ++h) {
    auto helper = work;
    pool.Schedule(std::move(helper));
  }
  work();
  while (queue->done.load(std::memory_order_acquire) < units) std::this_thread::yield();
}

// Every recurrence's w_hh repacked by `pack` (a level's forward_pack or backward_pack) into one
// buffer of per_group floats a recurrence, each thread packing a range of its rows: once per
// call, then read by every row range (a copy per range cost about as much as a few steps at
// T = 32).
FloatBuffer PackWeights(ffi::ThreadPool& pool, const Shape& shape, const float* w_hh,
                        int64_t per_group,
                        void (*pack)(const float*, int64_t, int64_t, int64_t, float*)) {
  FloatBuffer packed(shape.groups * per_group);
  float* out = packed.data();
  const int64_t weights = shape.hidden * kGates * shape.hidden;
  RunUnits(pool, shape.groups, shape.hidden, 1,
           [&shape, w_hh, per_group, pack, out, weights](int64_t g, int64_t u0, int64_t u1) {
             pack(w_hh + g * weights, shape.hidden, u0, u1, out + g * per_group);
           });
  return packed;
}

int64_t Product(ffi::Span<const int64_t> dims, size_t count) {
  int64_t p = 1;
  for (size_t k = 0; k < count; ++k) p *= dims[k];
  return p;
}

ffi::Error CheckRank(ffi::Span<const int64_t> dims, size_t rank, const char* name) {
  if (dims.size() < rank)
    return ffi::Error::InvalidArgument(std::string(name) + " has too few dimensions");
  return ffi::Error::Success();
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x_proj,
                       ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w_hh,
                       ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                       ffi::ResultBuffer<ffi::F32> hs,
                       ffi::ResultBuffer<ffi::F32> cs, ffi::ResultBuffer<ffi::F32>* gates,
                       bool reverse, bool bf16) {
  const auto w_dims = w_hh.dimensions(), x_dims = x_proj.dimensions(), h_dims = hs->dimensions();
  if (auto e = CheckRank(w_dims, 2, "w_hh"); e.failure()) return e;
  if (auto e = CheckRank(x_dims, 3, "x_proj"); e.failure()) return e;
  if (auto e = CheckRank(h_dims, 3, "hs"); e.failure()) return e;
  const size_t lead = w_dims.size() - 2;
  Shape shape{Product(w_dims, lead), h_dims[lead], h_dims[lead + 1], w_dims[lead]};
  const Kernels& kernels = Current();
  if (shape.hidden % kernels.vector_width != 0 || w_dims[lead + 1] != kGates * shape.hidden ||
      x_dims.size() != lead + 3 || x_dims[lead + 2] != kGates * shape.hidden ||
      bias.element_count() != static_cast<size_t>(shape.groups * kGates * shape.hidden))
    return ffi::Error::InvalidArgument("lstm_cpu: inconsistent shapes");
  ForwardArgs a{shape,
                reverse,
                x_dims[lead] == 1 && shape.steps != 1,
                x_proj.typed_data(),
                bias.typed_data(),
                w_hh.typed_data(),
                h0.typed_data(),
                c0.typed_data(),
                hs->typed_data(),
                cs->typed_data(),
                gates == nullptr ? nullptr : (*gates)->typed_data()};
  if (shape.steps == 0 || shape.batch == 0) return ffi::Error::Success();
  // bf16 matmuls where the level has them; elsewhere the float32 code (see lstm_cpu.py).
  const bool pairs = bf16 && kernels.forward_rows_bf16 != nullptr;
  const int64_t per_group = kernels.forward_packed_floats(shape.hidden) / (pairs ? 2 : 1);
  FloatBuffer packed_buffer = PackWeights(
      pool, shape, a.w_hh, per_group, pairs ? kernels.forward_pack_bf16 : kernels.forward_pack);
  const float* packed = packed_buffer.data();
  const auto rows = pairs ? kernels.forward_rows_bf16 : kernels.forward_rows;
  RunUnits(pool, shape.groups, shape.batch,
           pairs ? kernels.bf16_rows_per_tile : kernels.rows_per_tile,
           [&a, rows, packed, per_group](int64_t g, int64_t r0, int64_t r1) {
             rows(a, g, r0, r1, packed + g * per_group);
           });
  return ffi::Error::Success();
}

ffi::Error ForwardTrain(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x_proj,
                        ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w_hh,
                        ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                        ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> cs,
                        ffi::ResultBuffer<ffi::F32> gates, bool reverse, bool bf16) {
  return ForwardImpl(pool, x_proj, bias, w_hh, h0, c0, hs, cs, &gates, reverse, bf16);
}

ffi::Error ForwardInfer(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x_proj,
                        ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w_hh,
                        ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                        ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> cs,
                        bool reverse, bool bf16) {
  return ForwardImpl(pool, x_proj, bias, w_hh, h0, c0, hs, cs, nullptr, reverse, bf16);
}

ffi::Error BackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> hs, ffi::Buffer<ffi::F32> gates,
                        ffi::Buffer<ffi::F32> cs, ffi::Buffer<ffi::F32> c0,
                        ffi::Buffer<ffi::F32> d_hs, ffi::Buffer<ffi::F32> d_h_last,
                        ffi::Buffer<ffi::F32> d_c_last, ffi::ResultBuffer<ffi::F32> d_x_proj,
                        ffi::ResultBuffer<ffi::F32> d_bias, ffi::ResultBuffer<ffi::F32> d_w_hh,
                        ffi::ResultBuffer<ffi::F32> d_h0, ffi::ResultBuffer<ffi::F32> d_c0,
                        bool reverse, bool bf16) {
  const auto w_dims = w_hh.dimensions(), c_dims = cs.dimensions(), x_dims = d_x_proj->dimensions();
  if (auto e = CheckRank(w_dims, 2, "w_hh"); e.failure()) return e;
  if (auto e = CheckRank(c_dims, 3, "cs"); e.failure()) return e;
  const size_t lead = w_dims.size() - 2;
  Shape shape{Product(w_dims, lead), c_dims[lead], c_dims[lead + 1], w_dims[lead]};
  const Kernels& kernels = Current();
  if (shape.hidden % kernels.vector_width != 0 || w_dims[lead + 1] != kGates * shape.hidden ||
      c_dims.size() != lead + 3 || x_dims.size() != lead + 3 ||
      d_bias->element_count() != static_cast<size_t>(shape.groups * kGates * shape.hidden))
    return ffi::Error::InvalidArgument("lstm_cpu: inconsistent shapes");
  // A d_x_proj of one step is the gradient of a constant input: the sum over time of d_pre,
  // which then lives in a scratch buffer only.
  const bool constant_input = x_dims[lead] == 1 && shape.steps != 1;
  FloatBuffer d_pre_scratch(
      constant_input ? shape.groups * shape.steps * shape.batch * kGates * shape.hidden : 0);
  float* d_pre = constant_input ? d_pre_scratch.data() : d_x_proj->typed_data();
  BackwardArgs a{shape,
                 reverse,
                 w_hh.typed_data(),
                 h0.typed_data(),
                 hs.typed_data(),
                 gates.typed_data(),
                 cs.typed_data(),
                 c0.typed_data(),
                 d_hs.typed_data(),
                 d_h_last.typed_data(),
                 d_c_last.typed_data(),
                 d_pre,
                 constant_input ? d_x_proj->typed_data() : nullptr,
                 d_w_hh->typed_data(),
                 d_bias->typed_data(),
                 d_h0->typed_data(),
                 d_c0->typed_data()};
  if (shape.steps == 0 || shape.batch == 0) {
    const size_t state = shape.groups * shape.batch * shape.hidden;
    std::copy(a.d_h_last, a.d_h_last + state, a.d_h0);
    std::copy(a.d_c_last, a.d_c_last + state, a.d_c0);
    std::fill(a.d_w_hh, a.d_w_hh + shape.groups * shape.hidden * kGates * shape.hidden, 0.0f);
    std::fill(a.d_bias, a.d_bias + shape.groups * kGates * shape.hidden, 0.0f);
    std::fill(d_x_proj->typed_data(), d_x_proj->typed_data() + d_x_proj->element_count(), 0.0f);
    return ffi::Error::Success();
  }
  const bool pairs = bf16 && kernels.backward_rows_bf16 != nullptr;
  const int64_t per_group = kernels.backward_packed_floats(shape.hidden) / (pairs ? 2 : 1);
  FloatBuffer packed_buffer = PackWeights(
      pool, shape, a.w_hh, per_group, pairs ? kernels.backward_pack_bf16 : kernels.backward_pack);
  const float* packed = packed_buffer.data();
  const auto rows = pairs ? kernels.backward_rows_bf16 : kernels.backward_rows;
  const int64_t rows_per_tile = pairs ? kernels.bf16_rows_per_tile : kernels.rows_per_tile;
  RunUnits(pool, shape.groups, shape.batch, rows_per_tile,
           [&a, rows, packed, per_group](int64_t g, int64_t r0, int64_t r1) {
             rows(a, g, r0, r1, packed + g * per_group);
           });
  const auto units = pairs ? kernels.weight_grad_units_bf16 : kernels.weight_grad_units;
  RunUnits(pool, shape.groups, shape.hidden, rows_per_tile,
           [&a, units](int64_t g, int64_t u0, int64_t u1) { units(a, g, u0, u1); });
  return ffi::Error::Success();
}

// x rounded to bf16, to nearest with ties to even (NaN stays NaN). The kernel's own conversions
// are lstm_cpu_kernel.h's, compiled per level; this one is for TransposeToBf16 only.
uint16_t ToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// out [..., cols, rows] = x [..., rows, cols]^T rounded to bf16 (leading dimensions: independent
// matrices, from jax.vmap): the transposed operand of a bf16 weight-gradient matmul that XLA runs
// (musae_jax/lstm.py, input_matmul). XLA folds any transpose it can see (through optimization
// barriers and bitcasts too) into the dot, and then runs a bf16 dot with a transposed operand as
// a float32 one; it cannot see through this call. In 16 x 16 blocks so that the lines read and
// written stay in L1; threads take ranges of columns.
ffi::Error TransposeToBf16(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                           ffi::ResultBuffer<ffi::BF16> out) {
  const auto dims = x.dimensions();
  if (auto e = CheckRank(dims, 2, "x"); e.failure()) return e;
  const int64_t groups = Product(dims, dims.size() - 2);
  const int64_t rows = dims[dims.size() - 2], cols = dims[dims.size() - 1];
  const float* in = x.typed_data();
  uint16_t* result = out->typed_data();
  constexpr int64_t kBlock = 16;
  RunUnits(pool, groups, cols, kBlock, [=](int64_t g, int64_t c_begin, int64_t c_end) {
    const float* x_g = in + g * rows * cols;
    uint16_t* out_g = result + g * rows * cols;
    for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
      for (int64_t c0 = c_begin; c0 < c_end; c0 += kBlock)
        for (int64_t c = c0; c < std::min(c0 + kBlock, c_end); ++c)
          for (int64_t r = r0; r < std::min(r0 + kBlock, rows); ++r)
            out_g[c * rows + r] = ToBf16(x_g[r * cols + c]);
  });
  return ffi::Error::Success();
}

}  // namespace
}  // namespace musae_lstm_cpu

namespace {

using namespace musae_lstm_cpu;  // NOLINT: the handlers below are this file's own.

// Operands and results that both forward handlers have; the training one also returns the gates.
auto ForwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()   // x_proj
      .Arg<ffi::Buffer<ffi::F32>>()   // bias
      .Arg<ffi::Buffer<ffi::F32>>()   // w_hh
      .Arg<ffi::Buffer<ffi::F32>>()   // h0
      .Arg<ffi::Buffer<ffi::F32>>()   // c0
      .Ret<ffi::Buffer<ffi::F32>>()   // hs
      .Ret<ffi::Buffer<ffi::F32>>();  // cs
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(MusaeLstmForwardTrain, ForwardTrain,
                              ForwardBinding()
                                  .Ret<ffi::Buffer<ffi::F32>>()  // activated gates
                                  .Attr<bool>("reverse")
                                  .Attr<bool>("bf16"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MusaeLstmForwardInfer, ForwardInfer,
                              ForwardBinding().Attr<bool>("reverse").Attr<bool>("bf16"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MusaeLstmBackward, BackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w_hh
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // hs
                                  .Arg<ffi::Buffer<ffi::F32>>()  // activated gates
                                  .Arg<ffi::Buffer<ffi::F32>>()  // cs
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d_hs
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d_h_last
                                  .Arg<ffi::Buffer<ffi::F32>>()  // d_c_last
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_x_proj [T or 1, B, 4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_bias [4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_w_hh
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_h0
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_c0
                                  .Attr<bool>("reverse")
                                  .Attr<bool>("bf16"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MusaeTransposeToBf16, TransposeToBf16,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()    // x [..., rows, cols]
                                  .Ret<ffi::Buffer<ffi::BF16>>());  // [..., cols, rows]

// The level in use: its name and vector width (floats; the hidden size must be a multiple).
extern "C" const char* musae_lstm_cpu_isa() { return Current().name; }
extern "C" int musae_lstm_cpu_vector_width() { return Current().vector_width; }
// 1 when the level in use has bf16 matmuls (a call with bf16=true runs them), else 0.
extern "C" int musae_lstm_cpu_bf16_matmuls() { return Current().forward_rows_bf16 != nullptr; }

// The multiply-adds a second of the CPU's bf16 dot instruction (VDPBF16PS) over those of its
// float32 FMA, measured once on first call (under a millisecond); 0 where the CPU has no
// AVX512-BF16 (or the build is not for x86). About 2 is expected on AMD Zen 4, whose 512-bit FMAs
// issue at half the 256-bit rate (its bf16 matmuls run 1.84x float32's); 0.5 was measured on an
// Intel Xeon (family 6 model 207) whose AMX the VM hides. The Python loader's test of whether bf16
// pays.
extern "C" double musae_lstm_cpu_bf16_dot_speedup() {
#if defined(__x86_64__) || defined(__i386__)
  static const double speedup = CpuRuns(kAvx512Bf16Level) ? Avx512Bf16DotSpeedup() : 0.0;
  return speedup;
#else
  return 0.0;
#endif
}

// The levels this build has, widest first, separated by commas (e.g. "avx512,avx2,avx,generic").
extern "C" const char* musae_lstm_cpu_compiled_isas() {
  static const std::string names = [] {
    std::string joined;
    for (const Kernels* k : kLevels) joined += (joined.empty() ? "" : ",") + std::string(k->name);
    return joined;
  }();
  return names.c_str();
}

// 1 when this build has the level and this CPU can run it, 0 when the CPU cannot, -1 when the
// build has no level of that name.
extern "C" int musae_lstm_cpu_isa_runs(const char* name) {
  for (const Kernels* k : kLevels)
    if (std::strcmp(k->name, name) == 0) return CpuRuns(*k) ? 1 : 0;
  return -1;
}

// Switches to a level (by name); returns what musae_lstm_cpu_isa_runs does and switches only on
// 1. Call before any kernel runs: the vector width decides which shapes JAX sends here.
extern "C" int musae_lstm_cpu_set_isa(const char* name) {
  for (const Kernels* k : kLevels)
    if (std::strcmp(k->name, name) == 0) {
      if (!CpuRuns(*k)) return 0;
      g_kernels.store(k);
      return 1;
    }
  return -1;
}
