// The fused CPU LSTM kernel for any CPU: compiled with the command line's flags only (the
// architecture's baseline: SSE2 on x86-64, NEON on aarch64), GCC vector extensions of 4 floats.
// See lstm_cpu_kernel.h.

#include <cstdint>

#include "lstm_cpu_common.h"

#define MUSAE_LSTM_ISA_GENERIC 1
#define MUSAE_LSTM_ISA_NAME "generic"
#define MUSAE_LSTM_KERNELS kGenericKernels
#include "lstm_cpu_kernel.h"
