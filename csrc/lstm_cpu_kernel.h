// The vector body of the fused CPU LSTM (see lstm_cpu.cc for what it computes and why), compiled
// once per instruction-set level: lstm_cpu_amx_bf16.cc, lstm_cpu_avx512_bf16.cc,
// lstm_cpu_avx512.cc, lstm_cpu_avx2.cc, lstm_cpu_avx.cc and lstm_cpu_generic.cc each define one
// MUSAE_LSTM_ISA_* macro, switch the compiler's target for the rest of their translation unit,
// and include this file, which defines that level's Kernels table.
//
// Everything here has internal linkage (an anonymous namespace) and uses no standard-library
// template or inline function: an AVX-512 copy of, say, std::min could otherwise be the one the
// linker keeps for every translation unit, and the generic path would then fault on a CPU
// without AVX-512. The standard headers a level needs are included before its target switch.
//
// Levels: AVX-512 (16 floats a vector, 32 registers: register tiles of 6 rows x 4 gate vectors),
// AVX2 + FMA (8 floats, 16 registers: 6 rows x 2 vectors, twice), AVX (the same tiles, each
// multiply-add a multiply and an add), generic (GCC vector extensions of 4 floats: SSE2 on
// x86-64, 6 x 2 twice; NEON on aarch64, 6 x 4).
//
// bf16 matmuls (MUSAE_LSTM_BF16, with AVX-512 only: lstm_cpu_avx512_bf16.cc): the three recurrent
// matmuls take bfloat16 operands and accumulate in float32 with VDPBF16PS, which multiplies
// pairs of bf16 values adjacent along the depth and adds both products to one float lane. Their
// operands are therefore stored as "pairs": one 32-bit slot (a float-sized element of the same
// buffers and layouts as the float32 path) holds the bf16 values of two consecutive depth
// indices, so a pairs matmul is the float32 one at half the depth. Everything else (gates, cell,
// states, the bias and every gradient) stays float32.

#if !defined(MUSAE_LSTM_ISA_AVX512) && !defined(MUSAE_LSTM_ISA_AVX2) && \
    !defined(MUSAE_LSTM_ISA_AVX) && !defined(MUSAE_LSTM_ISA_GENERIC)
#error "define the instruction-set level before including lstm_cpu_kernel.h"
#endif

namespace musae_lstm_cpu {
namespace {

// The AVX2 and AVX levels share 256-bit vectors and every intrinsic used here.
#if defined(MUSAE_LSTM_ISA_AVX2) || defined(MUSAE_LSTM_ISA_AVX)
#define MUSAE_LSTM_256_BIT 1
#endif

#if defined(MUSAE_LSTM_ISA_AVX512)
constexpr int kVec = 16;  // float lanes per vector register
#elif defined(MUSAE_LSTM_256_BIT)
constexpr int kVec = 8;
#else
constexpr int kVec = 4;
#endif
// Whether the 4 gate vectors of a row tile fit the registers at once (see PanelMatmul).
#if defined(MUSAE_LSTM_ISA_AVX512) || defined(__aarch64__)
#define MUSAE_LSTM_ONE_PASS 1
#else
#define MUSAE_LSTM_ONE_PASS 0
#endif
#define MUSAE_LSTM_ROWS 6  // rows of a register tile
constexpr int kRowsPerTile = MUSAE_LSTM_ROWS;

typedef float Vf __attribute__((vector_size(kVec * sizeof(float))));
typedef int32_t Vi __attribute__((vector_size(kVec * sizeof(int32_t))));

inline int64_t MinI(int64_t a, int64_t b) { return a < b ? a : b; }

// Uninitialised floats on a cache-line boundary, freed at scope exit: lstm_cpu.cc's FloatBuffer
// for the kernel's own scratch (that one holds a std::unique_ptr, a template this file must not
// instantiate; new[] and delete[] are plain calls).
struct FloatScratch {
  explicit FloatScratch(int64_t floats) : storage(new float[floats + kCacheLineFloats]) {
    const uintptr_t line = kCacheLineFloats * sizeof(float);
    const uintptr_t address = reinterpret_cast<uintptr_t>(storage);
    data = reinterpret_cast<float*>((address + line - 1) / line * line);
  }
  ~FloatScratch() { delete[] storage; }
  FloatScratch(const FloatScratch&) = delete;
  FloatScratch& operator=(const FloatScratch&) = delete;
  float* const storage;
  float* data;
};

inline Vf Load(const float* p) {
  Vf v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store(float* p, Vf v) { __builtin_memcpy(p, &v, sizeof(v)); }
// A broadcast that compiles to one vbroadcastss (Vf{} + x would add +0.0f first: not a no-op
// for x = -0.0f, so the compiler keeps the add).
#if defined(MUSAE_LSTM_ISA_AVX512)
inline Vf Splat(float x) { return (Vf)_mm512_set1_ps(x); }
#elif defined(MUSAE_LSTM_256_BIT)
inline Vf Splat(float x) { return (Vf)_mm256_set1_ps(x); }
#else
inline Vf Splat(float x) { return Vf{x, x, x, x}; }
#endif
inline Vf Min(Vf a, Vf b) { return a < b ? a : b; }

#if defined(MUSAE_LSTM_BF16)
// x rounded to bf16 in the low 16 bits exactly as VCVTNEPS2BF16 rounds it (to nearest, ties to
// even; a NaN stays a quiet NaN; a denormal becomes a zero of its sign), so that a value packs to
// the same bits whether it is converted alone or in a vector (the backward pack and the unit
// tails of the weight gradient convert one at a time).
inline uint32_t Bf16Bits(float x) {
  uint32_t bits;
  __builtin_memcpy(&bits, &x, sizeof(bits));
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return (bits >> 16) | 0x40u;
  if (magnitude < 0x00800000u) return (bits >> 16) & 0x8000u;
  return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
}

// The pair slot of (lo, hi): lo's bf16 in the low half, as VDPBF16PS reads an even and an odd
// depth index.
inline float PairOf(float lo, float hi) {
  const uint32_t pair = Bf16Bits(lo) | (Bf16Bits(hi) << 16);
  float slot;
  __builtin_memcpy(&slot, &pair, sizeof(slot));
  return slot;
}

// Lane u of the result is the pair slot of (lo[u], hi[u]).
inline Vf PairsOf(Vf lo, Vf hi) {
  const __m512i low = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh((__m512)lo));
  const __m512i high = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh((__m512)hi));
  return (Vf)_mm512_or_si512(low, _mm512_slli_epi32(high, 16));
}

// x's kVec lanes as bf16, consecutive: kVec / 2 pair slots of consecutive depth indices.
inline void StoreBf16(float* slots, Vf x) {
  const __m256bh packed = _mm512_cvtneps_pbh((__m512)x);
  __builtin_memcpy(slots, &packed, sizeof(packed));
}
#endif
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

// 1 / x from the hardware estimate and one Newton step (error about 1 ulp from AVX-512's 14-bit
// estimate, a few ulp from AVX's 12-bit one): a vector division costs several times more, and
// the gate epilogue does five per vector.
inline Vf Reciprocal(Vf x) {
#if defined(MUSAE_LSTM_ISA_AVX512)
  // (The zero-masking form with every lane selected: the same instruction, and no GCC warning
  // about _mm512_rcp14_ps's undefined pass-through operand under a target pragma.)
  const Vf r = (Vf)_mm512_maskz_rcp14_ps((__mmask16)0xFFFF, (__m512)x);
  return r * (2.0f - x * r);
#elif defined(MUSAE_LSTM_256_BIT)
  const Vf r = (Vf)_mm256_rcp_ps((__m256)x);
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

// The lines of NV vectors of b (rows ldb apart) eight depth steps ahead: 5-9% off the kernel's
// forward + backward on an Intel Xeon, AVX-512 and AVX2 levels (4 ahead gave the same, 16 less;
// BENCHMARKS.md). A prefetch never faults, so running past the end of b is harmless; the address
// is computed as an integer for that reason.
template <int NV>
inline void PrefetchAhead(const float* b, int64_t ldb) {
#pragma GCC unroll 4
  for (int v = 0; v < NV * kVec; v += kCacheLineFloats)
    __builtin_prefetch(reinterpret_cast<const void*>(
                           reinterpret_cast<uintptr_t>(b + v) + 8 * ldb * sizeof(float)),
                       0, 3);
}

// acc[m][v] = sum_k a[m * lda + k * a_step] * b[k * ldb + v * kVec + (0..kVec)] for v < NV: MR
// rows of a times NV adjacent vectors' worth of columns of b (ldb = 4 * kVec when b is packed
// k-major). a_step = 1 reads a row-major; lda = 1 reads it transposed.
template <int MR, int NV>
inline void PanelMatmulN(const float* a, int64_t lda, int64_t a_step, const float* b, int64_t ldb,
                         int64_t depth, Vf (&acc)[MR][NV]) {
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[m][v] = Vf{};
  for (int64_t k = 0; k < depth; ++k) {
    Vf bv[NV];
    PrefetchAhead<NV>(b, ldb);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = Load(b + v * kVec);
    b += ldb;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const Vf am = Splat(a[m * lda + k * a_step]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[m][v] += am * bv[v];
    }
  }
}

#if defined(MUSAE_LSTM_BF16)
// PanelMatmulN on pair slots (a and b both; depth counts pairs): each step adds the products of
// two depth indices to every float lane.
template <int MR, int NV>
inline void PanelMatmulPairsN(const float* a, int64_t lda, int64_t a_step, const float* b,
                              int64_t ldb, int64_t depth, Vf (&acc)[MR][NV]) {
  // The sums in the intrinsics' own type: accumulating into acc through casts made GCC keep
  // them on the stack, a store and a load per instruction.
  __m512 sum[MR][NV];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) sum[m][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < depth; ++k) {
    __m512bh bv[NV];
    PrefetchAhead<NV>(b, ldb);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_ps(b + v * kVec);
    b += ldb;
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      // A broadcast of the slot's 32 bits (vbroadcastss moves bits; nothing is converted).
      const __m512bh am = (__m512bh)_mm512_set1_ps(a[m * lda + k * a_step]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) sum[m][v] = _mm512_dpbf16_ps(sum[m][v], am, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[m][v] = (Vf)sum[m][v];
}
#endif

// The same for the 4 gate vectors of a panel (NV = 4). With 32 vector registers (AVX-512, NEON)
// in one pass: 6 rows x 4 vectors = 24 accumulators, the panel's 4 vectors and a broadcast. With
// 16 (AVX2, SSE) in two passes over the two halves of the panel, 6 rows x 2 vectors = 12
// accumulators, 2 panel vectors and a broadcast each: the classic 6x16 AVX2 GEMM tile. (Also
// tried on Zen 4: one pass of 3 x 4 reading the panel from memory and one of 2 x 4, no faster
// than this; one pass of 6 x 4, the AVX-512 tiling with 8-float vectors, spills and ran about
// 1.5x slower. Unrolling the depth loop changed nothing.) Each accumulator sees the same
// operations in the same order either way.
template <int MR, bool kPairs = false>
inline void PanelMatmul(const float* a, int64_t lda, int64_t a_step, const float* b, int64_t ldb,
                        int64_t depth, Vf (&acc)[MR][kGates]) {
#if defined(MUSAE_LSTM_BF16)
  if constexpr (kPairs) {
    PanelMatmulPairsN<MR, kGates>(a, lda, a_step, b, ldb, depth, acc);
    return;
  }
#else
  static_assert(!kPairs, "pair slots need the AVX512-BF16 level");
#endif
#if MUSAE_LSTM_ONE_PASS
  PanelMatmulN<MR, kGates>(a, lda, a_step, b, ldb, depth, acc);
#else
  Vf half[MR][2];
#pragma GCC unroll 2
  for (int p = 0; p < 2; ++p) {
    PanelMatmulN<MR, 2>(a, lda, a_step, b + 2 * p * kVec, ldb, depth, half);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      acc[m][2 * p] = half[m][0];
      acc[m][2 * p + 1] = half[m][1];
    }
  }
#endif
}

// AMX tile sizes (used at the amx_bf16 level only; see below).
constexpr int64_t kAmxRows = 16;   // rows of a tile (batch rows; hidden units of d_w_hh)
constexpr int64_t kAmxPairs = 16;  // pair slots of a tile row (64 bytes)

inline int64_t AmxPadded(int64_t n) { return (n + kAmxRows - 1) / kAmxRows * kAmxRows; }

#if defined(MUSAE_LSTM_AMX)
// AMX-BF16 tiles (lstm_cpu_amx_bf16.cc): the bf16 matmuls of the three recurrent products as
// TDPBF16PS on 16-row tiles. A tile row is 64 bytes, 16 pair slots, so the pair-slot layouts of
// the AVX512-BF16 code are already what a tile loads: an A tile is 16 rows of 16 pair slots (32
// depth indices), a B tile 16 pair rows of 16 columns. Rows past the end of a range are computed
// on zero-filled padding and never stored. The tile state is per thread: every unit configures
// it first and releases it last.
struct alignas(64) AmxTileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0-3: the four 16 x 16 float blocks of a result panel; 4: A; 5-7: B. All 16 x 64 bytes.
// Configured for the object's scope when `used` (a function instantiated without tiles, e.g. the
// forward of a hidden size that is not a multiple of 32, leaves the tile state alone).
class AmxTiles {
 public:
  explicit AmxTiles(bool used) : used_(used) {
    if (!used) return;
    AmxTileConfig config;
    __builtin_memset(&config, 0, sizeof(config));
    config.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
      config.rows[t] = kAmxRows;
      config.colsb[t] = kAmxPairs * 4;
    }
    _tile_loadconfig(&config);
  }
  ~AmxTiles() {
    if (used_) _tile_release();
  }
  AmxTiles(const AmxTiles&) = delete;
  AmxTiles& operator=(const AmxTiles&) = delete;

 private:
  const bool used_;
};

// out[v][m][u] = sum over depth pairs k2 of the pair products a[m * lda + k2] . b[k2 * ldb +
// v * kVec + u], for 16 rows m, the 4 column blocks v of a panel and kVec = 16 columns u each:
// PanelMatmulPairsN's sums for 16 rows at once. depth_pairs is a multiple of kAmxPairs; a and b
// are pair slots, lda and ldb in floats; out is 4 x 16 x 16 floats.
inline void AmxPanelMatmul(const float* a, int64_t lda, const float* b, int64_t ldb,
                           int64_t depth_pairs, float* out) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const int64_t a_stride = lda * sizeof(float), b_stride = ldb * sizeof(float);
  for (int64_t k2 = 0; k2 < depth_pairs; k2 += kAmxPairs) {
    const float* b_k = b + k2 * ldb;
    _tile_loadd(4, a + k2, a_stride);
    _tile_loadd(5, b_k, b_stride);
    _tile_loadd(6, b_k + kVec, b_stride);
    _tile_dpbf16ps(0, 4, 5);
    _tile_loadd(7, b_k + 2 * kVec, b_stride);
    _tile_dpbf16ps(1, 4, 6);
    _tile_loadd(5, b_k + 3 * kVec, b_stride);
    _tile_dpbf16ps(2, 4, 7);
    _tile_dpbf16ps(3, 4, 5);
  }
  constexpr int64_t kRow = kVec * sizeof(float), kBlock = kAmxRows * kVec;
  _tile_stored(0, out, kRow);
  _tile_stored(1, out + kBlock, kRow);
  _tile_stored(2, out + 2 * kBlock, kRow);
  _tile_stored(3, out + 3 * kBlock, kRow);
}
#endif

// ---------------------------------------------------------------------------------------------
// Forward.

int64_t ForwardPackedFloats(int64_t hidden) { return hidden * kGates * hidden; }

// packed[j][k][v * kVec + u] = w[k][v * H + j * kVec + u]: for hidden block j, the four gates of
// its kVec units side by side, k-major. This call writes the rows k in [k_begin, k_end).
void PackForward(const float* w, int64_t hidden, int64_t k_begin, int64_t k_end, float* packed) {
  const int64_t blocks = hidden / kVec, cols = kGates * hidden;
  for (int64_t k = k_begin; k < k_end; ++k)
    for (int64_t j = 0; j < blocks; ++j)
      for (int v = 0; v < kGates; ++v)
        __builtin_memcpy(packed + ((j * hidden + k) * kGates + v) * kVec,
                         w + k * cols + v * hidden + j * kVec, kVec * sizeof(float));
}

#if defined(MUSAE_LSTM_BF16)
// PackForward in pair slots: packed[j][k2][v * kVec + u] holds rows 2 k2 and 2 k2 + 1 of w (half
// the depth, half the floats). This call writes the pairs whose even row is in [k_begin, k_end),
// so calls over ranges that tile [0, hidden) write every pair once.
void PackForwardPairs(const float* w, int64_t hidden, int64_t k_begin, int64_t k_end,
                      float* packed) {
  const int64_t blocks = hidden / kVec, cols = kGates * hidden, pairs = hidden / 2;
  for (int64_t k2 = (k_begin + 1) / 2; 2 * k2 < k_end; ++k2)
    for (int64_t j = 0; j < blocks; ++j)
      for (int v = 0; v < kGates; ++v) {
        const float* even = w + 2 * k2 * cols + v * hidden + j * kVec;
        Store(packed + ((j * pairs + k2) * kGates + v) * kVec,
              PairsOf(Load(even), Load(even + cols)));
      }
}
#endif

// The gates, cell and state of row r, hidden units [col, col + kVec), from their recurrent
// matmul sums acc (4 gates) and the bias b; with kPairs h_t is also written as bf16 pair slots
// at h_pairs_row for the next step's matmul.
template <bool kPairs>
inline void ForwardEpilogue(int64_t hidden, int64_t r, int64_t col, const Vf (&acc)[kGates],
                            const Vf (&b)[kGates], const float* c_prev, const float* x_t,
                            float* h_t, float* c_t, float* g_t, float* h_pairs_row) {
  const int64_t cols = kGates * hidden;
  const float* x = x_t + r * cols + col;
  // (x + b) first, as when XLA added the bias to the input projection before the kernel.
  const Vf i = Sigmoid(acc[0] + (Load(x) + b[0]));
  const Vf f = Sigmoid(acc[1] + (Load(x + hidden) + b[1]));
  const Vf g = Tanh(acc[2] + (Load(x + 2 * hidden) + b[2]));
  const Vf o = Sigmoid(acc[3] + (Load(x + 3 * hidden) + b[3]));
  const Vf c = f * Load(c_prev + r * hidden + col) + i * g;
  Store(c_t + r * hidden + col, c);
  const Vf h = o * Tanh(c);
  Store(h_t + r * hidden + col, h);
#if defined(MUSAE_LSTM_BF16)
  if constexpr (kPairs) StoreBf16(h_pairs_row + col / 2, h);
#else
  (void)h_pairs_row;
#endif
  if (g_t != nullptr) {
    float* gr = g_t + r * cols + col;
    Store(gr, i);
    Store(gr + hidden, f);
    Store(gr + 2 * hidden, g);
    Store(gr + 3 * hidden, o);
  }
}

// Hidden block j (units col..col + kVec) of rows [row, row + MR) for one step. The matmul reads
// the tile's rows of h_{t-1} at h_rows (lda apart): floats, or pair slots (kPairs), which the
// epilogue then also writes for h_t at h_pairs_out (lda apart).
template <int MR, bool kPairs>
void ForwardTile(const ForwardArgs& a, const float* packed_j, int64_t row, int64_t col,
                 const float* h_rows, int64_t lda, const float* c_prev, const float* x_t,
                 const float* bias, float* h_t, float* c_t, float* g_t, float* h_pairs_out) {
  const int64_t hidden = a.shape.hidden, cols = kGates * hidden;
  // The epilogue's x_proj lines (4 gates of each row, 1 KiB+ apart, a new set every tile: no
  // hardware prefetcher follows that), requested before the matmul so that they arrive while it
  // runs. Without this the epilogue stalled on them: ~30% of the tile's samples, AVX2 level.
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < kGates; ++v)
      __builtin_prefetch(x_t + (row + m) * cols + v * hidden + col, 0, 3);
  Vf acc[MR][kGates];
  PanelMatmul<MR, kPairs>(h_rows, lda, 1, packed_j, kGates * kVec, kPairs ? hidden / 2 : hidden,
                          acc);
  Vf b[kGates];
#pragma GCC unroll 4
  for (int v = 0; v < kGates; ++v) b[v] = Load(bias + v * hidden + col);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
    ForwardEpilogue<kPairs>(hidden, row + m, col, acc[m], b, c_prev, x_t, h_t, c_t, g_t,
                            h_pairs_out + m * lda);
}

#if defined(MUSAE_LSTM_AMX)
// ForwardTile for up to 16 rows [row, row + rows) with AMX tiles: h_rows holds 16 rows of pair
// slots (zero past `rows`).
void ForwardTileAmx(const ForwardArgs& a, const float* packed_j, int64_t row, int64_t rows,
                    int64_t col, const float* h_rows, int64_t lda, const float* c_prev,
                    const float* x_t, const float* bias, float* h_t, float* c_t, float* g_t,
                    float* h_pairs_out) {
  const int64_t hidden = a.shape.hidden, cols = kGates * hidden;
  for (int64_t m = 0; m < rows; ++m)
#pragma GCC unroll 4
    for (int v = 0; v < kGates; ++v)
      __builtin_prefetch(x_t + (row + m) * cols + v * hidden + col, 0, 3);
  alignas(64) float out[kGates * kAmxRows * kVec];
  AmxPanelMatmul(h_rows, lda, packed_j, kGates * kVec, hidden / 2, out);
  Vf b[kGates];
#pragma GCC unroll 4
  for (int v = 0; v < kGates; ++v) b[v] = Load(bias + v * hidden + col);
  for (int64_t m = 0; m < rows; ++m) {
    Vf acc[kGates];
#pragma GCC unroll 4
    for (int v = 0; v < kGates; ++v) acc[v] = Load(out + (v * kAmxRows + m) * kVec);
    ForwardEpilogue<true>(hidden, row + m, col, acc, b, c_prev, x_t, h_t, c_t, g_t,
                          h_pairs_out + m * lda);
  }
}
#endif

// Rows [row_begin, row_end) of one recurrence over all steps; `packed` is its w_hh, packed (in
// pair slots for kPairs). kAmx (with kPairs): the matmuls on AMX tiles of 16 rows.
template <bool kPairs, bool kAmx = false>
void ForwardRows(const ForwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end,
                 const float* packed) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  const float* x = a.x_proj + group * (a.constant_input ? 1 : s.steps) * s.batch * cols;
  const float* bias = a.bias + group * cols;
  float* hs = a.hs + group * s.steps * state;
  float* cs = a.cs + group * s.steps * state;
  float* gates = a.gates == nullptr ? nullptr : a.gates + group * s.steps * s.batch * cols;
  // With kPairs, the matmul reads h_{t-1} of these rows as bf16 pair slots: h0's converted here,
  // then each step's written by the epilogue that computes it, into the other of two buffers.
  // (AMX: each buffer padded with zero rows to whole tiles.)
  const int64_t rows = kAmx ? AmxPadded(row_end - row_begin) : row_end - row_begin;
  const int64_t lda = kPairs ? hidden / 2 : hidden;
  FloatScratch pairs(kPairs ? 2 * rows * lda : 0);
#if defined(MUSAE_LSTM_AMX)
  if constexpr (kAmx) __builtin_memset(pairs.data, 0, 2 * rows * lda * sizeof(float));
  AmxTiles tiles(kAmx);
#endif
#if defined(MUSAE_LSTM_BF16)
  if constexpr (kPairs)
    for (int64_t k = 0; k < (row_end - row_begin) * hidden; k += kVec)
      StoreBf16(pairs.data + k / 2, Load(a.h0 + group * state + row_begin * hidden + k));
#endif
  for (int64_t n = 0; n < s.steps; ++n) {
    const int64_t t = a.reverse ? s.steps - 1 - n : n;
    const int64_t before = a.reverse ? t + 1 : t - 1;
    const float* h_prev = n == 0 ? a.h0 + group * state : hs + before * state;
    const float* c_prev = n == 0 ? a.c0 + group * state : cs + before * state;
    const float* x_t = x + (a.constant_input ? 0 : t * s.batch * cols);
    float* g_t = gates == nullptr ? nullptr : gates + t * s.batch * cols;
    const float* pairs_prev = pairs.data + (n % 2) * rows * lda;
    float* pairs_next = pairs.data + ((n + 1) % 2) * rows * lda;
    // Hidden blocks outside, row tiles inside: a block's panel of w_hh (hidden x 4 vectors) is
    // read from the outer caches once a step and then reused from L1/L2 by every row tile.
    for (int64_t j = 0; j < hidden / kVec; ++j) {
      const float* packed_j = packed + j * lda * kGates * kVec;
#if defined(MUSAE_LSTM_AMX)
      if constexpr (kAmx) {
        for (int64_t row = row_begin; row < row_end; row += kAmxRows)
          ForwardTileAmx(a, packed_j, row, MinI(kAmxRows, row_end - row), j * kVec,
                         pairs_prev + (row - row_begin) * lda, lda, c_prev, x_t, bias,
                         hs + t * state, cs + t * state, g_t,
                         pairs_next + (row - row_begin) * lda);
        continue;
      }
#endif
      for (int64_t row = row_begin; row < row_end; row += kRowsPerTile) {
        const float* h_rows = kPairs ? pairs_prev + (row - row_begin) * lda : h_prev + row * lda;
        float* h_pairs_out = pairs_next + (row - row_begin) * lda;
        switch (MinI(kRowsPerTile, row_end - row)) {
#define MUSAE_FORWARD_CASE(MR)                                                          \
  case MR:                                                                              \
    ForwardTile<MR, kPairs>(a, packed_j, row, j * kVec, h_rows, lda, c_prev, x_t, bias, \
                            hs + t * state, cs + t * state, g_t, h_pairs_out);          \
    break;
          MUSAE_FORWARD_CASE(1)
          MUSAE_FORWARD_CASE(2)
#if MUSAE_LSTM_ROWS >= 3
          MUSAE_FORWARD_CASE(3)
#endif
#if MUSAE_LSTM_ROWS >= 4
          MUSAE_FORWARD_CASE(4)
#endif
#if MUSAE_LSTM_ROWS >= 5
          MUSAE_FORWARD_CASE(5)
#endif
#if MUSAE_LSTM_ROWS >= 6
          MUSAE_FORWARD_CASE(6)
#endif
#undef MUSAE_FORWARD_CASE
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward.

// packed[p][k][u] = w[p * 4 * kVec + u][k] for k < 4H: w^T in panels of 4 vectors of hidden
// outputs, zero-padded past the last hidden unit.
int64_t BackwardPackedFloats(int64_t hidden) {
  const int64_t panel = kGates * kVec;
  return (hidden + panel - 1) / panel * kGates * hidden * panel;
}

// Writes the rows [u_begin, u_end) of w (hidden units) into their panels, and the zero padding
// of the last panel when u_end == hidden. Blocked so that the lines written (k-major in a panel)
// and the rows read stay in L1: row by row, each element would land on its own line of a 256 KiB
// panel and the pack took about as long as a few steps of the recurrence.
void PackBackward(const float* w, int64_t hidden, int64_t u_begin, int64_t u_end, float* packed) {
  const int64_t cols = kGates * hidden, panel = kGates * kVec;
  constexpr int64_t kBlock = 16;  // units a block (one line of a panel row) and columns a block
  for (int64_t u0 = u_begin; u0 < u_end; u0 += kBlock) {
    const int64_t u1 = MinI(u_end, u0 + kBlock);
    for (int64_t k0 = 0; k0 < cols; k0 += kBlock)
      for (int64_t u = u0; u < u1; ++u) {
        const float* w_row = w + u * cols;
        float* out = packed + (u / panel) * cols * panel + u % panel;
        for (int64_t k = k0; k < k0 + kBlock && k < cols; ++k) out[k * panel] = w_row[k];
      }
  }
  const int64_t padded = (hidden + panel - 1) / panel * panel;
  if (u_end == hidden && padded != hidden) {
    float* last = packed + (hidden / panel) * cols * panel;
    for (int64_t k = 0; k < cols; ++k)
      for (int64_t u = hidden % panel; u < panel; ++u) last[k * panel + u] = 0.0f;
  }
}

#if defined(MUSAE_LSTM_BF16)
// PackBackward in pair slots: packed[p][k2][u] holds w[p * 4 * kVec + u][2 k2, 2 k2 + 1] (half
// the depth, half the floats), zero-padded past the last hidden unit.
void PackBackwardPairs(const float* w, int64_t hidden, int64_t u_begin, int64_t u_end,
                       float* packed) {
  const int64_t pairs = kGates * hidden / 2, panel = kGates * kVec;
  for (int64_t u = u_begin; u < u_end; ++u) {
    const float* w_row = w + u * 2 * pairs;
    float* out = packed + (u / panel) * pairs * panel + u % panel;
    for (int64_t k2 = 0; k2 < pairs; ++k2)
      out[k2 * panel] = PairOf(w_row[2 * k2], w_row[2 * k2 + 1]);
  }
  const int64_t padded = (hidden + panel - 1) / panel * panel;
  if (u_end == hidden && padded != hidden) {
    float* last = packed + (hidden / panel) * pairs * panel;
    for (int64_t k2 = 0; k2 < pairs; ++k2)
      for (int64_t u = hidden % panel; u < panel; ++u) last[k2 * panel + u] = 0.0f;
  }
}
#endif

// dh[rows, panel p] = d_pre[rows] @ w_hh^T[:, panel p] for rows [row, row + MR), the tile's rows
// of d_pre at d_pre_rows, lda apart (floats, or pair slots for kPairs).
template <int MR, bool kPairs>
void BackwardTile(const float* packed_p, int64_t hidden, int64_t p, const float* d_pre_rows,
                  int64_t lda, int64_t row, float* dh) {
  const int64_t panel = kGates * kVec;
  Vf acc[MR][kGates];
  PanelMatmul<MR, kPairs>(d_pre_rows, lda, 1, packed_p, panel, lda, acc);
  const int64_t valid = MinI(kGates, (hidden - p * panel) / kVec);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
    for (int64_t v = 0; v < valid; ++v)
      Store(dh + (row + m) * hidden + p * panel + v * kVec, acc[m][v]);
}

// The reverse-time loop for batch rows [row_begin, row_end) of one recurrence; `packed` is
// w_hh^T packed (in pair slots for kPairs). kAmx (with kPairs): dh's matmul on AMX tiles.
template <bool kPairs, bool kAmx = false>
void BackwardRows(const BackwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end,
                  const float* packed) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  const int64_t panel = kGates * kVec;
  const float* gates = a.gates + group * s.steps * s.batch * cols;
  const float* cs = a.cs + group * s.steps * state;
  const float* d_hs = a.d_hs + group * s.steps * state;
  float* d_pre = a.d_pre + group * s.steps * s.batch * cols;
  float* d_x_sum = a.d_x_sum == nullptr ? nullptr : a.d_x_sum + group * s.batch * cols;
  if (d_x_sum != nullptr)
    for (int64_t k = row_begin * cols; k < row_end * cols; ++k) d_x_sum[k] = 0.0f;
  // dh and dc reaching the current step from the steps after it; only rows in range are used.
  float* dh_later = a.d_h0 + group * state;
  float* dc_later = a.d_c0 + group * state;
  const int64_t first = row_begin * hidden, count = (row_end - row_begin) * hidden;
  __builtin_memcpy(dh_later + first, a.d_h_last + group * state + first, count * sizeof(float));
  __builtin_memcpy(dc_later + first, a.d_c_last + group * state + first, count * sizeof(float));
  // With kPairs, dh's matmul reads this step's d_pre of these rows as bf16 pair slots, written
  // beside the float32 d_pre as it is computed.
  // (AMX: padded with zero rows to whole tiles.)
  const int64_t lda = kPairs ? cols / 2 : cols;
  const int64_t pair_rows = kAmx ? AmxPadded(row_end - row_begin) : row_end - row_begin;
  FloatScratch d_pre_pairs(kPairs ? pair_rows * lda : 0);
#if defined(MUSAE_LSTM_AMX)
  if constexpr (kAmx) __builtin_memset(d_pre_pairs.data, 0, pair_rows * lda * sizeof(float));
  AmxTiles tiles(kAmx);
#endif
  // Time in the opposite order of the forward pass.
  auto time_of = [&a, &s](int64_t n) { return a.reverse ? n : s.steps - 1 - n; };
  auto c_before_of = [&a, &s, cs, group, state](int64_t t) {
    const bool has_before = a.reverse ? t + 1 < s.steps : t > 0;
    return has_before ? cs + (a.reverse ? t + 1 : t - 1) * state : a.c0 + group * state;
  };
  for (int64_t n = 0; n < s.steps; ++n) {
    const int64_t t = time_of(n);
    const float* c_before = c_before_of(t);
    const float* g_t = gates + t * s.batch * cols;
    float* dp_t = d_pre + t * s.batch * cols;
    for (int64_t r = row_begin; r < row_end; ++r) {
      // The next row's inputs (the first row of the next step after the last), requested a row
      // ahead: its gates are 4 runs of a line or two, 1 KiB+ apart, that start anew every row
      // and are too short for the hardware prefetchers; the loop stalled on them (~12% of its
      // samples, AVX2 level).
      const bool last_row = r + 1 == row_end;
      const int64_t t_next = last_row && n + 1 < s.steps ? time_of(n + 1) : t;
      const int64_t r_next = last_row ? row_begin : r + 1;
      const float* g_next = gates + (t_next * s.batch + r_next) * cols;
      const float* c_next = cs + t_next * state + r_next * hidden;
      const float* d_hs_next = d_hs + t_next * state + r_next * hidden;
      const float* c_before_next = c_before_of(t_next) + r_next * hidden;
      for (int64_t col = 0; col < hidden; col += kVec) {
        if (col % kCacheLineFloats == 0) {
#pragma GCC unroll 4
          for (int v = 0; v < kGates; ++v) __builtin_prefetch(g_next + v * hidden + col, 0, 3);
          __builtin_prefetch(c_next + col, 0, 3);
          __builtin_prefetch(d_hs_next + col, 0, 3);
          __builtin_prefetch(c_before_next + col, 0, 3);
        }
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
#if defined(MUSAE_LSTM_BF16)
        if constexpr (kPairs)
          for (int v = 0; v < kGates; ++v)
            StoreBf16(d_pre_pairs.data + (r - row_begin) * lda + (v * hidden + col) / 2,
                      d_gate[v]);
#endif
        if (d_x_sum != nullptr) {
          float* sum = d_x_sum + r * cols + col;
          for (int v = 0; v < kGates; ++v)
            Store(sum + v * hidden, Load(sum + v * hidden) + d_gate[v]);
        }
        Store(dc_later + at, dc * f);
      }
    }
    // Panels outside, row tiles inside: a panel of w_hh^T is reused from L2 by every row tile.
    for (int64_t p = 0; p * panel < hidden; ++p) {
      const float* packed_p = packed + p * lda * panel;
#if defined(MUSAE_LSTM_AMX)
      if constexpr (kAmx) {
        const int64_t valid = MinI(kGates, (hidden - p * panel) / kVec);
        for (int64_t row = row_begin; row < row_end; row += kAmxRows) {
          alignas(64) float out[kGates * kAmxRows * kVec];
          AmxPanelMatmul(d_pre_pairs.data + (row - row_begin) * lda, lda, packed_p, panel, lda,
                         out);
          for (int64_t m = 0; m < MinI(kAmxRows, row_end - row); ++m)
            for (int64_t v = 0; v < valid; ++v)
              Store(dh_later + (row + m) * hidden + p * panel + v * kVec,
                    Load(out + (v * kAmxRows + m) * kVec));
        }
        continue;
      }
#endif
      for (int64_t row = row_begin; row < row_end; row += kRowsPerTile) {
        const float* d_pre_rows =
            kPairs ? d_pre_pairs.data + (row - row_begin) * lda : dp_t + row * lda;
        switch (MinI(kRowsPerTile, row_end - row)) {
#define MUSAE_BACKWARD_CASE(MR)                                                           \
  case MR:                                                                                \
    BackwardTile<MR, kPairs>(packed_p, hidden, p, d_pre_rows, lda, row, dh_later);        \
    break;
          MUSAE_BACKWARD_CASE(1)
          MUSAE_BACKWARD_CASE(2)
#if MUSAE_LSTM_ROWS >= 3
          MUSAE_BACKWARD_CASE(3)
#endif
#if MUSAE_LSTM_ROWS >= 4
          MUSAE_BACKWARD_CASE(4)
#endif
#if MUSAE_LSTM_ROWS >= 5
          MUSAE_BACKWARD_CASE(5)
#endif
#if MUSAE_LSTM_ROWS >= 6
          MUSAE_BACKWARD_CASE(6)
#endif
#undef MUSAE_BACKWARD_CASE
        }
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

template <int MR, bool kPairs = false>
void WeightGradTile(const float* a, int64_t lda, int64_t a_step, const float* d_pre, int64_t cols,
                    int64_t depth, bool first_chunk, float* d_w) {
  Vf acc[MR][kGates];
  PanelMatmul<MR, kPairs>(a, lda, a_step, d_pre, cols, depth, acc);
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < kGates; ++v) {
      float* out = d_w + m * cols + v * kVec;
      Store(out, first_chunk ? acc[m][v] : Load(out) + acc[m][v]);
    }
}

// With kPairs the matmul reads h_before and d_pre as bf16 pair slots of consecutive depth rows
// (a chunk of odd length padded with a zero row), converted chunk by chunk; the bias gradient
// still sums the float32 d_pre. kAmx (with kPairs): the matmul on AMX tiles of 16 units, h_before
// copied unit-major (a tile's A rows) and the chunk's depth padded with zero pairs to whole tiles.
template <bool kPairs, bool kAmx = false>
void WeightGradUnits(const BackwardArgs& a, int64_t group, int64_t unit_begin, int64_t unit_end) {
  const Shape& s = a.shape;
  const int64_t hidden = s.hidden, cols = kGates * hidden, state = s.batch * hidden;
  const int64_t depth = s.steps * s.batch, units = unit_end - unit_begin;
  const int64_t panel = kGates * kVec;
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
  // The bias gradient is the weight gradient of an input that is 1 at every step and row: one
  // more row of units, for the range that starts at unit 0, read from the same chunks of d_pre.
  // (A multiply by 1 in a fused multiply-add is exact: these are plain sums.)
  static const float kOne = 1.0f;
  float* d_bias = unit_begin == 0 ? a.d_bias + group * cols : nullptr;
  // A chunk of h_before is first copied tile by tile into a buffer read contiguously: in place,
  // a tile reads one float run from each of its rows, H floats apart, which fall on a few L1
  // sets and evict each other (and d_pre's lines) before the next tile and the next panel reuse
  // them. The backward call 0.5-6% faster at the AVX2 level in two alternating series (T 32,
  // B 64 and T 256, B 16; H 256), level at AVX-512. d_pre is read in place: copying each panel
  // too was slower at both levels.
  const int64_t full_tiles = units / kRowsPerTile, rest = units % kRowsPerTile;
  const int64_t tiles = full_tiles + (rest > 0);
  FloatScratch h_packed(kAmx ? 0 : tiles * kRowsPerTile * kDepthChunk);
  FloatScratch d_pre_pairs(kPairs ? kDepthChunk / 2 * cols : 0);
  FloatScratch pair_row(kPairs ? units : 0);
  constexpr int64_t kChunkPairs = kDepthChunk / 2;
  const int64_t amx_tiles = kAmx ? AmxPadded(units) / kAmxRows : 0;
  FloatScratch h_amx(amx_tiles * kAmxRows * kChunkPairs);  // [unit][pair of the chunk]
#if defined(MUSAE_LSTM_AMX)
  static_assert(kChunkPairs % kAmxPairs == 0, "a full chunk is whole tiles deep");
  if constexpr (kAmx)
    __builtin_memset(h_amx.data, 0, amx_tiles * kAmxRows * kChunkPairs * sizeof(float));
  AmxTiles tiles_state(kAmx);
#endif
  for (const Segment& segment : segments) {
    for (int64_t k = segment.k_begin; k < segment.k_end; k += kDepthChunk) {
      const int64_t chunk = MinI(kDepthChunk, segment.k_end - k);
      const float* h_rows = segment.rows + (k - segment.k_begin) * hidden + unit_begin;
      // The matmul's depth: rows of the chunk, or pairs of them.
      const int64_t chunk_depth = kPairs ? (chunk + 1) / 2 : chunk;
#if defined(MUSAE_LSTM_BF16)
      if constexpr (kPairs) {
        const float* d_pre_rows = d_pre + k * cols;
        for (int64_t kk2 = 0; kk2 < chunk_depth; ++kk2) {
          const float* even = d_pre_rows + 2 * kk2 * cols;
          const bool odd_end = 2 * kk2 + 1 == chunk;
          for (int64_t c = 0; c < cols; c += kVec)
            Store(d_pre_pairs.data + kk2 * cols + c,
                  PairsOf(Load(even + c), odd_end ? Vf{} : Load(even + cols + c)));
        }
      }
#endif
#if defined(MUSAE_LSTM_AMX)
      if constexpr (kAmx) {  // A short chunk's depth padded to whole tiles: zero pairs.
        const int64_t padded = AmxPadded(chunk_depth);
        for (int64_t kk2 = chunk_depth; kk2 < padded; ++kk2)
          __builtin_memset(d_pre_pairs.data + kk2 * cols, 0, cols * sizeof(float));
        for (int64_t u = 0; u < units; ++u)
          for (int64_t kk2 = chunk_depth; kk2 < padded; ++kk2)
            h_amx.data[u * kChunkPairs + kk2] = 0.0f;
      }
#endif
      // h_packed[tile][kk][m] = row kk of the chunk's depth [tile * rows + m], each row of h read
      // once, in order: h_rows[kk], or with kPairs the pair slots of h_rows[2 kk, 2 kk + 1].
      for (int64_t kk = 0; kk < chunk_depth; ++kk) {
        const float* row = h_rows + kk * hidden;
#if defined(MUSAE_LSTM_BF16)
        if constexpr (kPairs) {
          const float* even = h_rows + 2 * kk * hidden;
          const bool odd_end = 2 * kk + 1 == chunk;
          int64_t u = 0;
          for (; u + kVec <= units; u += kVec)
            Store(pair_row.data + u,
                  PairsOf(Load(even + u), odd_end ? Vf{} : Load(even + hidden + u)));
          for (; u < units; ++u)
            pair_row.data[u] = PairOf(even[u], odd_end ? 0.0f : even[hidden + u]);
          row = pair_row.data;
        }
#endif
        if constexpr (kAmx) {
          for (int64_t u = 0; u < units; ++u) h_amx.data[u * kChunkPairs + kk] = row[u];
          continue;
        }
        for (int64_t tile = 0; tile < full_tiles; ++tile)
          __builtin_memcpy(h_packed.data + (tile * chunk_depth + kk) * kRowsPerTile,
                           row + tile * kRowsPerTile, kRowsPerTile * sizeof(float));
        for (int64_t m = 0; m < rest; ++m)
          h_packed.data[full_tiles * kRowsPerTile * chunk_depth + kk * rest + m] =
              row[full_tiles * kRowsPerTile + m];
      }
      for (int64_t p = 0; p < cols; p += panel) {
        const float* b_panel = d_pre + k * cols + p;
        const float* b_matmul = kPairs ? d_pre_pairs.data + p : b_panel;
#if defined(MUSAE_LSTM_AMX)
        for (int64_t tile = 0; kAmx && tile < amx_tiles; ++tile) {
          alignas(64) float out[kGates * kAmxRows * kVec];
          AmxPanelMatmul(h_amx.data + tile * kAmxRows * kChunkPairs, kChunkPairs, b_matmul, cols,
                         AmxPadded(chunk_depth), out);
          const int64_t u = tile * kAmxRows;
          for (int64_t m = 0; m < MinI(kAmxRows, units - u); ++m)
#pragma GCC unroll 4
            for (int v = 0; v < kGates; ++v) {
              float* d = d_w + (u + m) * cols + p + v * kVec;
              const Vf sum = Load(out + (v * kAmxRows + m) * kVec);
              Store(d, k == 0 ? sum : Load(d) + sum);
            }
        }
#endif
        for (int64_t tile = 0; !kAmx && tile < tiles; ++tile) {
          const int64_t u = tile * kRowsPerTile;
          const float* a_tile = h_packed.data + tile * kRowsPerTile * chunk_depth;
          float* out = d_w + u * cols + p;
          switch (MinI(kRowsPerTile, units - u)) {
#define MUSAE_WEIGHT_CASE(MR)                                                             \
  case MR:                                                                                \
    WeightGradTile<MR, kPairs>(a_tile, 1, MR, b_matmul, cols, chunk_depth, k == 0, out);  \
    break;
            MUSAE_WEIGHT_CASE(1)
            MUSAE_WEIGHT_CASE(2)
#if MUSAE_LSTM_ROWS >= 3
            MUSAE_WEIGHT_CASE(3)
#endif
#if MUSAE_LSTM_ROWS >= 4
            MUSAE_WEIGHT_CASE(4)
#endif
#if MUSAE_LSTM_ROWS >= 5
            MUSAE_WEIGHT_CASE(5)
#endif
#if MUSAE_LSTM_ROWS >= 6
            MUSAE_WEIGHT_CASE(6)
#endif
#undef MUSAE_WEIGHT_CASE
          }
        }
        if (d_bias != nullptr)
          WeightGradTile<1>(&kOne, 0, 0, b_panel, cols, chunk, k == 0, d_bias + p);
      }
    }
  }
}

#if defined(MUSAE_LSTM_AMX)
// The forward tiles read 32 depth indices of h a step: hidden sizes that are not a multiple of 32
// run the AVX512-BF16 code of this build.
void ForwardRowsAmx(const ForwardArgs& a, int64_t group, int64_t row_begin, int64_t row_end,
                    const float* packed) {
  if (a.shape.hidden % (2 * kAmxPairs) == 0)
    ForwardRows<true, true>(a, group, row_begin, row_end, packed);
  else
    ForwardRows<true, false>(a, group, row_begin, row_end, packed);
}
#endif

}  // namespace

const Kernels MUSAE_LSTM_KERNELS = {
    MUSAE_LSTM_ISA_NAME,  kVec,         kRowsPerTile,
    ForwardPackedFloats,  PackForward,  ForwardRows<false>,
    BackwardPackedFloats, PackBackward, BackwardRows<false>,
    WeightGradUnits<false>,
#if defined(MUSAE_LSTM_AMX)
    PackForwardPairs,     ForwardRowsAmx,     PackBackwardPairs, BackwardRows<true, true>,
    WeightGradUnits<true, true>, kAmxRows,
#elif defined(MUSAE_LSTM_BF16)
    PackForwardPairs,     ForwardRows<true>,  PackBackwardPairs, BackwardRows<true>,
    WeightGradUnits<true>, kRowsPerTile,
#else
    nullptr,              nullptr,            nullptr,           nullptr,
    nullptr,              kRowsPerTile,
#endif
};

}  // namespace musae_lstm_cpu

#undef MUSAE_LSTM_ROWS
#undef MUSAE_LSTM_ONE_PASS
#undef MUSAE_LSTM_256_BIT
