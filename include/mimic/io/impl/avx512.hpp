// Whether the io layer's AVX-512 kernels (row hash, byte transpose) are compiled in, and the target
// attributes that enable them per function; which CPU runs them is checked at run time by each caller.
#pragma once

// x86-64 host compilers with GCC-style target attributes only: device compilers (nvcc, hipcc) and other
// CPUs compile the scalar code alone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__) && !defined(__HIPCC__)
#define MIMIC_IO_AVX512 1
#include <immintrin.h>
/// 64-bit lanes with vpmullq.
#define MIMIC_AVX512_DQ __attribute__((target("avx512f,avx512dq")))
/// Byte permutes across a whole register (vpermb, vpermt2b) and byte masks.
#define MIMIC_AVX512_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#else
#define MIMIC_IO_AVX512 0
#endif
