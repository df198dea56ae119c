// Fused CPU LSTM recurrence for musae_jax, called from JAX through the XLA FFI.
//
// Only the sequential part of an LSTM lives here: given the input projection x_proj (bias
// included), run gates_t = x_proj_t + h_{t-1} @ w_hh over time (forward), and walk back over time
// producing the pre-activation gate gradients (= the gradient of x_proj, summed over time for a
// constant input) and dh/dc of the initial state (backward), then the recurrent weight gradient
// as ONE matmul over all T*B rows. The input projection and its gradient stay in XLA.
//
// Why a hand-written kernel: inside an XLA while loop, each step of a [B, H] x [H, 4H] matmul and
// the sigmoid/tanh fusions after it pay a fixed per-iteration cost that dominates at MusAE's sizes.
// Here one step is a register-blocked matmul whose epilogue applies the gate nonlinearities and
// the cell update while the gate values are still in registers: w_hh is repacked once per call
// so that the i, f, g, o columns of the same kVec hidden units sit side by side.
//
// Layout (row-major, time-major like musae_jax.lstm): x_proj [..., T or 1, B, 4H] (1 = the same
// input at every step, read without being copied), w_hh [..., H, 4H], states [..., B, H]. Leading
// dimensions "..." (from jax.vmap) are independent recurrences. Gate order is (i, f, g, o).
//
// Threads: batch rows are independent, so the work is cut into (recurrence, row range) units
// with no synchronisation inside a unit. The calling thread takes units from a shared counter
// and so does one helper task per other thread of XLA's intra-op pool; a helper that only
// starts after every unit is taken returns at once, so nothing ever waits for a busy pool.
//
// Numerics: float32 throughout; tanh uses the same rational approximation as XLA's CPU backend
// and exp the Cephes polynomial (about 1 ulp), so results match the JAX reference to float32
// rounding. Denormals are flushed, as XLA does in its own generated code.

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

#if defined(__AVX512F__)
constexpr int kVec = 16;  // float lanes per vector register
#else
constexpr int kVec = 8;
#endif
constexpr int kGates = 4;
constexpr int kRowsPerTile = 6;  // 6 rows x 4 vectors = 24 accumulators (of 32 AVX-512 registers)

typedef float Vf __attribute__((vector_size(kVec * sizeof(float))));
typedef int32_t Vi __attribute__((vector_size(kVec * sizeof(int32_t))));

inline Vf Load(const float* p) {
  Vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store(float* p, Vf v) { std::memcpy(p, &v, sizeof(v)); }
// A broadcast that compiles to one vbroadcastss (Vf{} + x would add +0.0f first: not a no-op
// for x = -0.0f, so the compiler keeps the add).
#if defined(__AVX512F__)
inline Vf Splat(float x) { return (Vf)_mm512_set1_ps(x); }
#elif defined(__AVX__)
inline Vf Splat(float x) { return (Vf)_mm256_set1_ps(x); }
#else
inline Vf Splat(float x) { return Vf{} + x; }
#endif
inline Vf Min(Vf a, Vf b) { return a < b ? a : b; }
inline Vf Max(Vf a, Vf b) { return a > b ? a : b; }

// exp(x), Cephes single-precision polynomial; inputs clamped to the normal float range.
inline Vf Exp(Vf x) {
  x = Min(Max(x, Splat(-87.3365478515625f)), Splat(88.3762626647949f));
  const Vf magic = Splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to the nearest integer
  Vf n = (x * 1.44269504088896341f + magic) - magic;
  Vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  Vf p = Splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  Vf y = p * r * r + r + 1.0f;
  Vi bits = (__builtin_convertvector(n, Vi) + 127) << 23;
  return y * (Vf)bits;  // a cast between vector types reinterprets the bits
}

// 1 / x from the 14-bit hardware estimate and one Newton step (error about 1 ulp): a vector
// division costs several times more, and the gate epilogue does five per vector.
inline Vf Reciprocal(Vf x) {
#if defined(__AVX512F__)
  const Vf r = (Vf)_mm512_rcp14_ps((__m512)x);
  return r * (2.0f - x * r);
#else
  return 1.0f / x;
#endif
}

inline Vf Sigmoid(Vf x) { return Reciprocal(1.0f + Exp(-x)); }

// tanh(x) as XLA's CPU backend computes it (a [13/6] rational approximation on [-7.9, 7.9]).
inline Vf Tanh(Vf x) {
  const Vf clamped = Min(Max(x, Splat(-7.90531110763549805f)), Splat(7.90531110763549805f));
  const Vf x2 = clamped * clamped;
  Vf p = Splat(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * clamped;
  Vf q = Splat(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const Vf small = Splat(0.0004f);
  const Vf ax = Max(x, -x);
  return ax < small ? x : p * Reciprocal(q);
}

// acc[m][v] = sum_k a[m * lda + k * a_step] * b[k * ldb + v * kVec + (0..kVec)]: MR rows of a
// times a panel of 4 adjacent vectors' worth of columns of b (ldb = 4 * kVec when b is packed
// k-major). a_step = 1 reads a row-major; lda = 1 reads it transposed.
template <int MR>
inline void PanelMatmul(const float* a, int64_t lda, int64_t a_step, const float* b, int64_t ldb,
                        int64_t depth, Vf (&acc)[MR][kGates]) {
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < kGates; ++v) acc[m][v] = Vf{};
  for (int64_t k = 0; k < depth; ++k) {
    const Vf b0 = Load(b), b1 = Load(b + kVec), b2 = Load(b + 2 * kVec), b3 = Load(b + 3 * kVec);
    b += ldb;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const Vf am = Splat(a[m * lda + k * a_step]);
      acc[m][0] += am * b0;
      acc[m][1] += am * b1;
      acc[m][2] += am * b2;
      acc[m][3] += am * b3;
    }
  }
}

// Saves the floating point control state, sets flush-to-zero and denormals-are-zero, restores.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned int saved_;
};

struct Shape {
  int64_t groups;  // independent recurrences (leading dimensions)
  int64_t steps;
  int64_t batch;
  int64_t hidden;
};

// ---------------------------------------------------------------------------------------------
// Forward.

struct ForwardArgs {
  Shape shape;
  bool reverse;
  bool constant_input;
  const float* x_proj;
  const float* w_hh;
  const float* h0;
  const float* c0;
  float* hs;
  float* cs;
  float* gates;  // activated gates for the backward pass; null when not kept
};

// packed[j][k][v * kVec + u] = w[k][v * H + j * kVec + u]: for hidden block j, the four gates of
// its kVec units side by side, k-major.
void PackForward(const float* w, int64_t hidden, float* packed) {
  const int64_t blocks = hidden / kVec, cols = kGates * hidden;
  for (int64_t j = 0; j < blocks; ++j)
    for (int64_t k = 0; k < hidden; ++k)
      for (int v = 0; v < kGates; ++v)
        std::memcpy(packed + ((j * hidden + k) * kGates + v) * kVec,
                    w + k * cols + v * hidden + j * kVec, kVec * sizeof(float));
}

template <int MR>
void ForwardTile(const ForwardArgs& a, const float* packed, int64_t row, const float* h_prev,
                 const float* c_prev, const float* x_t, float* h_t, float* c_t, float* g_t) {
  const int64_t hidden = a.shape.hidden, cols = kGates * hidden;
  for (int64_t j = 0; j < hidden / kVec; ++j) {
    Vf acc[MR][kGates];
    PanelMatmul<MR>(h_prev + row * hidden, hidden, 1, packed + j * hidden * kGates * kVec,
                    kGates * kVec, hidden, acc);
    const int64_t col = j * kVec;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const int64_t r = row + m;
      const float* x = x_t + r * cols + col;
      const Vf i = Sigmoid(acc[m][0] + Load(x));
      const Vf f = Sigmoid(acc[m][1] + Load(x + hidden));
      const Vf g = Tanh(acc[m][2] + Load(x + 2 * hidden));
      const Vf o = Sigmoid(acc[m][3] + Load(x + 3 * hidden));
      const Vf c = f * Load(c_prev + r * hidden + col) + i * g;
      Store(c_t + r * hidden + col, c);
      Store(h_t + r * hidden + col, o * Tanh(c));
      if (g_t != nullptr) {
        float* gr = g_t + r * cols + col;
        Store(gr, i);
        Store(gr + hidden, f);
        Store(gr + 2 * hidden, g);
        Store(gr + 3 * hidden, o);
      }
    }
  }
}

void ForwardRows(const ForwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  std::vector<float> packed(hidden * cols);
  PackForward(a.w_hh + group * hidden * cols, hidden, packed.data());
  const float* x = a.x_proj + group * (a.constant_input ? 1 : s.steps) * s.batch * cols;
  float* hs = a.hs + group * s.steps * state;
  float* cs = a.cs + group * s.steps * state;
  float* gates = a.gates == nullptr ? nullptr : a.gates + group * s.steps * s.batch * cols;
  for (int64_t n = 0; n < s.steps; ++n) {
    const int64_t t = a.reverse ? s.steps - 1 - n : n;
    const int64_t before = a.reverse ? t + 1 : t - 1;
    const float* h_prev = n == 0 ? a.h0 + group * state : hs + before * state;
    const float* c_prev = n == 0 ? a.c0 + group * state : cs + before * state;
    const float* x_t = x + (a.constant_input ? 0 : t * s.batch * cols);
    float* g_t = gates == nullptr ? nullptr : gates + t * s.batch * cols;
    for (int64_t row = row_begin; row < row_end; row += kRowsPerTile) {
      const float* args_h = h_prev;
      switch (std::min<int64_t>(kRowsPerTile, row_end - row)) {
#define MUSAE_FORWARD_CASE(MR)                                                                 \
  case MR:                                                                                     \
    ForwardTile<MR>(a, packed.data(), row, args_h, c_prev, x_t, hs + t * state, cs + t * state, \
                    g_t);                                                                      \
    break;
        MUSAE_FORWARD_CASE(1)
        MUSAE_FORWARD_CASE(2)
        MUSAE_FORWARD_CASE(3)
        MUSAE_FORWARD_CASE(4)
        MUSAE_FORWARD_CASE(5)
        MUSAE_FORWARD_CASE(6)
#undef MUSAE_FORWARD_CASE
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward.

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
  float* d_h0;
  float* d_c0;
};

// packed[p][k][u] = w[p * 4 * kVec + u][k] for k < 4H: w^T in panels of 4 vectors of hidden
// outputs, zero-padded past the last hidden unit.
void PackBackward(const float* w, int64_t hidden, float* packed) {
  const int64_t cols = kGates * hidden, panel = kGates * kVec;
  const int64_t panels = (hidden + panel - 1) / panel;
  std::fill(packed, packed + panels * cols * panel, 0.0f);
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t u = 0; u < panel && p * panel + u < hidden; ++u) {
      const float* w_row = w + (p * panel + u) * cols;
      float* out = packed + p * cols * panel + u;
      for (int64_t k = 0; k < cols; ++k) out[k * panel] = w_row[k];
    }
}

// dh[rows] = d_pre[rows] @ w_hh^T for rows [row, row + MR).
template <int MR>
void BackwardTile(const float* packed, int64_t hidden, const float* d_pre, int64_t row,
                  float* dh) {
  const int64_t cols = kGates * hidden, panel = kGates * kVec;
  for (int64_t p = 0; p * panel < hidden; ++p) {
    Vf acc[MR][kGates];
    PanelMatmul<MR>(d_pre + row * cols, cols, 1, packed + p * cols * panel, panel, cols, acc);
    const int64_t valid = std::min<int64_t>(kGates, (hidden - p * panel) / kVec);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
      for (int64_t v = 0; v < valid; ++v)
        Store(dh + (row + m) * hidden + p * panel + v * kVec, acc[m][v]);
  }
}

// The reverse-time loop for batch rows [row_begin, row_end) of one recurrence.
void BackwardRows(const BackwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  const int64_t panel = kGates * kVec, panels = (hidden + panel - 1) / panel;
  std::vector<float> packed(panels * cols * panel);
  PackBackward(a.w_hh + group * hidden * cols, hidden, packed.data());
  const float* gates = a.gates + group * s.steps * s.batch * cols;
  const float* cs = a.cs + group * s.steps * state;
  const float* d_hs = a.d_hs + group * s.steps * state;
  float* d_pre = a.d_pre + group * s.steps * s.batch * cols;
  float* d_x_sum = a.d_x_sum == nullptr ? nullptr : a.d_x_sum + group * s.batch * cols;
  if (d_x_sum != nullptr)
    std::fill(d_x_sum + row_begin * cols, d_x_sum + row_end * cols, 0.0f);
  // dh and dc reaching the current step from the steps after it; only rows in range are used.
  float* dh_later = a.d_h0 + group * state;
  float* dc_later = a.d_c0 + group * state;
  const int64_t first = row_begin * hidden, count = (row_end - row_begin) * hidden;
  std::memcpy(dh_later + first, a.d_h_last + group * state + first, count * sizeof(float));
  std::memcpy(dc_later + first, a.d_c_last + group * state + first, count * sizeof(float));
  for (int64_t n = 0; n < s.steps; ++n) {
    // Time in the opposite order of the forward pass.
    const int64_t t = a.reverse ? n : s.steps - 1 - n;
    const bool has_before = a.reverse ? t + 1 < s.steps : t > 0;
    const int64_t before = a.reverse ? t + 1 : t - 1;
    const float* c_before = has_before ? cs + before * state : a.c0 + group * state;
    const float* g_t = gates + t * s.batch * cols;
    float* dp_t = d_pre + t * s.batch * cols;
    for (int64_t r = row_begin; r < row_end; ++r) {
      for (int64_t col = 0; col < hidden; col += kVec) {
        const int64_t at = r * hidden + col;
        const float* g = g_t + r * cols + col;
        const Vf i = Load(g), f = Load(g + hidden), gg = Load(g + 2 * hidden),
                 o = Load(g + 3 * hidden);
        const Vf tanh_c = Tanh(Load(cs + t * state + at));
        const Vf dh = Load(d_hs + t * state + at) + Load(dh_later + at);
        const Vf dc = Load(dc_later + at) + dh * o * (1.0f - tanh_c * tanh_c);
        const Vf d_gate[kGates] = {dc * gg * i * (1.0f - i),
                                   dc * Load(c_before + at) * f * (1.0f - f),
                                   dc * i * (1.0f - gg * gg), dh * tanh_c * o * (1.0f - o)};
        float* dp = dp_t + r * cols + col;
        for (int v = 0; v < kGates; ++v) Store(dp + v * hidden, d_gate[v]);
        if (d_x_sum != nullptr) {
          float* sum = d_x_sum + r * cols + col;
          for (int v = 0; v < kGates; ++v)
            Store(sum + v * hidden, Load(sum + v * hidden) + d_gate[v]);
        }
        Store(dc_later + at, dc * f);
      }
    }
    for (int64_t row = row_begin; row < row_end; row += kRowsPerTile) {
      switch (std::min<int64_t>(kRowsPerTile, row_end - row)) {
#define MUSAE_BACKWARD_CASE(MR)                                   \
  case MR:                                                        \
    BackwardTile<MR>(packed.data(), hidden, dp_t, row, dh_later); \
    break;
        MUSAE_BACKWARD_CASE(1)
        MUSAE_BACKWARD_CASE(2)
        MUSAE_BACKWARD_CASE(3)
        MUSAE_BACKWARD_CASE(4)
        MUSAE_BACKWARD_CASE(5)
        MUSAE_BACKWARD_CASE(6)
#undef MUSAE_BACKWARD_CASE
      }
    }
  }
  // dh_later/dc_later now hold the gradients of h0 and c0 (they alias d_h0 and d_c0).
}

// d_w_hh[u] = sum over steps t and rows b of h_before(t)[b][u] * d_pre[t][b], for hidden units
// u in [unit_begin, unit_end): one matmul of depth T*B after the loop, not T small ones in it.
// Blocked over the depth so that a chunk of d_pre is read from memory once and then reused from
// cache by every tile of units (d_pre itself, T*B x 4H, is far larger than the caches).
constexpr int64_t kDepthChunk = 128;  // 128 x 4 vectors of d_pre = 32 KiB with AVX-512

template <int MR>
void WeightGradTile(const float* h_before, int64_t hidden, const float* d_pre, int64_t cols,
                    int64_t depth, bool first_chunk, float* d_w) {
  Vf acc[MR][kGates];
  // h_before is [depth, hidden] row-major: read transposed, unit m of step-row k.
  PanelMatmul<MR>(h_before, 1, hidden, d_pre, cols, depth, acc);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < kGates; ++v) {
      float* out = d_w + m * cols + v * kVec;
      Store(out, first_chunk ? acc[m][v] : Load(out) + acc[m][v]);
    }
}

void WeightGradUnits(const BackwardArgs& a, int64_t group, int64_t unit_begin, int64_t unit_end) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  const int64_t depth = s.steps * s.batch, units = unit_end - unit_begin;
  // The rows (t, b) of h_before, the state each step started from, are hs shifted by one step,
  // with h0 at the first processed step: two contiguous segments of depth, read in place.
  struct Segment {
    const float* rows;  // row k_begin
    int64_t k_begin, k_end;
  };
  const float* hs = a.hs + group * s.steps * state;
  const float* h0 = a.h0 + group * state;
  const int64_t last = depth - s.batch;
  const Segment segments[2] = {
      a.reverse ? Segment{hs + state, 0, last} : Segment{h0, 0, s.batch},
      a.reverse ? Segment{h0, last, depth} : Segment{hs, s.batch, depth}};
  const float* d_pre = a.d_pre + group * depth * cols;
  float* d_w = a.d_w_hh + (group * hidden + unit_begin) * cols;
  for (const Segment& segment : segments) {
    for (int64_t k = segment.k_begin; k < segment.k_end; k += kDepthChunk) {
      const int64_t chunk = std::min(kDepthChunk, segment.k_end - k);
      const float* h_rows = segment.rows + (k - segment.k_begin) * hidden + unit_begin;
      for (int64_t p = 0; p < cols; p += kGates * kVec) {
        for (int64_t u = 0; u < units; u += kRowsPerTile) {
          const float* b_panel = d_pre + k * cols + p;
          float* out = d_w + u * cols + p;
          switch (std::min<int64_t>(kRowsPerTile, units - u)) {
#define MUSAE_WEIGHT_CASE(MR)                                                          \
  case MR:                                                                             \
    WeightGradTile<MR>(h_rows + u, hidden, b_panel, cols, chunk, k == 0, out);         \
    break;
            MUSAE_WEIGHT_CASE(1)
            MUSAE_WEIGHT_CASE(2)
            MUSAE_WEIGHT_CASE(3)
            MUSAE_WEIGHT_CASE(4)
            MUSAE_WEIGHT_CASE(5)
            MUSAE_WEIGHT_CASE(6)
#undef MUSAE_WEIGHT_CASE
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Work sharing over XLA's intra-op thread pool.

struct WorkQueue {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

// Rows of one range run in tiles of up to kRowsPerTile rows, each reading w_hh once a step.
int64_t TilesPerGroup(int64_t rows, int64_t chunks) {
  int64_t tiles = 0;
  for (int64_t c = 0; c < chunks; ++c)
    tiles += (rows * (c + 1) / chunks - rows * c / chunks + kRowsPerTile - 1) / kRowsPerTile;
  return tiles;
}

// Runs body(group, begin, end) over ranges of [0, rows) of every group, the caller working too;
// returns when every unit has finished. Rows are split to give every thread a unit, and further,
// up to two units per thread, where that adds no row tile (64 rows on 2 threads: 4 ranges of 16,
// 12 tiles either way; 32 rows: 2 ranges, as 4 ranges of 8 would take 8 tiles instead of 6). A
// helper that starts late (XLA's pool runs other work of the step at the same time) then still
// finds work.
template <typename Body>
void RunUnits(ffi::ThreadPool& pool, int64_t groups, int64_t rows, const Body& body) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  int64_t chunks = groups < threads ? (threads + groups - 1) / groups : 1;
  chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, rows / 4));  // >= 4 rows a range
  const int64_t tiles = TilesPerGroup(rows, chunks);
  while (groups * chunks < 2 * threads && chunks * 2 <= rows / 4 &&
         TilesPerGroup(rows, chunks * 2) <= tiles)
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
                       ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> h0,
                       ffi::Buffer<ffi::F32> c0, ffi::ResultBuffer<ffi::F32> hs,
                       ffi::ResultBuffer<ffi::F32> cs, ffi::ResultBuffer<ffi::F32>* gates,
                       bool reverse) {
  const auto w_dims = w_hh.dimensions(), x_dims = x_proj.dimensions(), h_dims = hs->dimensions();
  if (auto e = CheckRank(w_dims, 2, "w_hh"); e.failure()) return e;
  if (auto e = CheckRank(x_dims, 3, "x_proj"); e.failure()) return e;
  if (auto e = CheckRank(h_dims, 3, "hs"); e.failure()) return e;
  const size_t lead = w_dims.size() - 2;
  Shape shape{Product(w_dims, lead), h_dims[lead], h_dims[lead + 1], w_dims[lead]};
  if (shape.hidden % kVec != 0 || w_dims[lead + 1] != kGates * shape.hidden ||
      x_dims.size() != lead + 3 || x_dims[lead + 2] != kGates * shape.hidden)
    return ffi::Error::InvalidArgument("lstm_cpu: inconsistent shapes");
  ForwardArgs a{shape,
                reverse,
                x_dims[lead] == 1 && shape.steps != 1,
                x_proj.typed_data(),
                w_hh.typed_data(),
                h0.typed_data(),
                c0.typed_data(),
                hs->typed_data(),
                cs->typed_data(),
                gates == nullptr ? nullptr : (*gates)->typed_data()};
  if (shape.steps == 0 || shape.batch == 0) return ffi::Error::Success();
  RunUnits(pool, shape.groups, shape.batch,
           [&a](int64_t g, int64_t r0, int64_t r1) { ForwardRows(a, g, r0, r1); });
  return ffi::Error::Success();
}

ffi::Error ForwardTrain(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x_proj,
                        ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> c0, ffi::ResultBuffer<ffi::F32> hs,
                        ffi::ResultBuffer<ffi::F32> cs, ffi::ResultBuffer<ffi::F32> gates,
                        bool reverse) {
  return ForwardImpl(pool, x_proj, w_hh, h0, c0, hs, cs, &gates, reverse);
}

ffi::Error ForwardInfer(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x_proj,
                        ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> c0, ffi::ResultBuffer<ffi::F32> hs,
                        ffi::ResultBuffer<ffi::F32> cs, bool reverse) {
  return ForwardImpl(pool, x_proj, w_hh, h0, c0, hs, cs, nullptr, reverse);
}

ffi::Error BackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w_hh, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> hs, ffi::Buffer<ffi::F32> gates,
                        ffi::Buffer<ffi::F32> cs, ffi::Buffer<ffi::F32> c0,
                        ffi::Buffer<ffi::F32> d_hs, ffi::Buffer<ffi::F32> d_h_last,
                        ffi::Buffer<ffi::F32> d_c_last, ffi::ResultBuffer<ffi::F32> d_x_proj,
                        ffi::ResultBuffer<ffi::F32> d_w_hh, ffi::ResultBuffer<ffi::F32> d_h0,
                        ffi::ResultBuffer<ffi::F32> d_c0, bool reverse) {
  const auto w_dims = w_hh.dimensions(), c_dims = cs.dimensions(), x_dims = d_x_proj->dimensions();
  if (auto e = CheckRank(w_dims, 2, "w_hh"); e.failure()) return e;
  if (auto e = CheckRank(c_dims, 3, "cs"); e.failure()) return e;
  const size_t lead = w_dims.size() - 2;
  Shape shape{Product(w_dims, lead), c_dims[lead], c_dims[lead + 1], w_dims[lead]};
  if (shape.hidden % kVec != 0 || w_dims[lead + 1] != kGates * shape.hidden ||
      c_dims.size() != lead + 3 || x_dims.size() != lead + 3)
    return ffi::Error::InvalidArgument("lstm_cpu: inconsistent shapes");
  // A d_x_proj of one step is the gradient of a constant input: the sum over time of d_pre,
  // which then lives in a scratch buffer only.
  const bool constant_input = x_dims[lead] == 1 && shape.steps != 1;
  std::vector<float> d_pre_scratch;
  float* d_pre = d_x_proj->typed_data();
  if (constant_input) {
    d_pre_scratch.resize(shape.groups * shape.steps * shape.batch * kGates * shape.hidden);
    d_pre = d_pre_scratch.data();
  }
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
                 d_h0->typed_data(),
                 d_c0->typed_data()};
  if (shape.steps == 0 || shape.batch == 0) {
    const size_t state = shape.groups * shape.batch * shape.hidden;
    std::copy(a.d_h_last, a.d_h_last + state, a.d_h0);
    std::copy(a.d_c_last, a.d_c_last + state, a.d_c0);
    std::fill(a.d_w_hh, a.d_w_hh + shape.groups * shape.hidden * kGates * shape.hidden, 0.0f);
    std::fill(d_x_proj->typed_data(), d_x_proj->typed_data() + d_x_proj->element_count(), 0.0f);
    return ffi::Error::Success();
  }
  RunUnits(pool, shape.groups, shape.batch,
           [&a](int64_t g, int64_t r0, int64_t r1) { BackwardRows(a, g, r0, r1); });
  RunUnits(pool, shape.groups, shape.hidden,
           [&a](int64_t g, int64_t u0, int64_t u1) { WeightGradUnits(a, g, u0, u1); });
  return ffi::Error::Success();
}

}  // namespace

namespace {

// Operands and results that both forward handlers have; the training one also returns the gates.
auto ForwardBinding() {
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()   // x_proj
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
                                  .Attr<bool>("reverse"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(MusaeLstmForwardInfer, ForwardInfer,
                              ForwardBinding().Attr<bool>("reverse"));

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
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_w_hh
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_h0
                                  .Ret<ffi::Buffer<ffi::F32>>()  // d_c0
                                  .Attr<bool>("reverse"));

// Lets the Python side check that the library was built for this CPU's vector width.
extern "C" int musae_lstm_cpu_vector_width() { return kVec; }
