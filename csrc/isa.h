/* isa.h: compiles the kernel header named by ISA_TEMPLATE once per real type and instruction set (AVX-512,
 * AVX2+FMA and baseline SSE2 on x86-64; baseline elsewhere), so that one build runs on any x86-64, and
 * ISA_DISPATCH(name, ...) calls the instance for this CPU: name_avx512, name_avx2 or name_base, as
 * cnn_get_gemm_isa() (gemm.c) picks it. The header reads INSTANCE = (real type, elements per vector register,
 * suffix of the instance's names) and undefines what it defines. Used by gemm.c and conv_direct.c. */
#define PASTE(a, b) a##b
#define PASTE2(a, b) PASTE(a, b)

#if defined(__x86_64__) && defined(__GNUC__)
#define CNN_X86 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#define INSTANCE (float, 16, _f32_avx512)
#include ISA_TEMPLATE
#define INSTANCE (double, 8, _f64_avx512)
#include ISA_TEMPLATE
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define INSTANCE (float, 8, _f32_avx2)
#include ISA_TEMPLATE
#define INSTANCE (double, 4, _f64_avx2)
#include ISA_TEMPLATE
#pragma GCC pop_options
#endif

#define INSTANCE (float, 4, _f32_base)
#include ISA_TEMPLATE
#define INSTANCE (double, 2, _f64_base)
#include ISA_TEMPLATE

#ifdef CNN_X86
#define ISA_DISPATCH(S, ...)                                 \
    do {                                                     \
        cnn_gemm_isa isa = cnn_get_gemm_isa();               \
        if (isa == CNN_ISA_AVX512) S##_avx512(__VA_ARGS__);  \
        else if (isa == CNN_ISA_AVX2) S##_avx2(__VA_ARGS__); \
        else S##_base(__VA_ARGS__);                          \
    } while (0)
#else
#define ISA_DISPATCH(S, ...) S##_base(__VA_ARGS__)
#endif
