/* A stand-in libcurand.so.10 for GPU machines whose PyTorch ships no cuRAND (PyTorch's
 * CUDA 13 wheels dropped it). dnatune links cuRAND through candle, which creates a generator
 * for every CUDA device, but dnatune draws all its random numbers on the CPU (initialisation,
 * dropout masks), so creating, seeding and destroying a generator is all it needs. Generating
 * numbers fails loudly with CURAND_STATUS_NOT_INITIALIZED, so nothing can silently use it.
 *
 * bench/gpu/verify.sh puts this on the library path only when no real libcurand.so.10 is
 * found, and says so. Built by bench/gpu/build-kit.sh with the version script beside it.
 */
#include <stdio.h>

typedef int curandStatus_t;
#define CURAND_STATUS_SUCCESS 0
#define CURAND_STATUS_NOT_INITIALIZED 101

static int dummy_generator;

curandStatus_t curandCreateGenerator(void **generator, int rng_type) {
    (void)rng_type;
    *generator = &dummy_generator;
    return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandDestroyGenerator(void *generator) {
    (void)generator;
    return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandSetPseudoRandomGeneratorSeed(void *generator, unsigned long long seed) {
    (void)generator;
    (void)seed;
    return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandSetGeneratorOffset(void *generator, unsigned long long offset) {
    (void)generator;
    (void)offset;
    return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandSetStream(void *generator, void *stream) {
    (void)generator;
    (void)stream;
    return CURAND_STATUS_SUCCESS;
}

static curandStatus_t unavailable(const char *function) {
    fprintf(stderr,
            "%s: this machine has no cuRAND library; the dnatune GPU kit's stand-in cannot "
            "generate random numbers\n",
            function);
    return CURAND_STATUS_NOT_INITIALIZED;
}

#define UNAVAILABLE(name) \
    curandStatus_t name(void) { return unavailable(#name); }

UNAVAILABLE(curandGenerate)
UNAVAILABLE(curandGenerateLongLong)
UNAVAILABLE(curandGenerateUniform)
UNAVAILABLE(curandGenerateUniformDouble)
UNAVAILABLE(curandGenerateNormal)
UNAVAILABLE(curandGenerateNormalDouble)
UNAVAILABLE(curandGenerateLogNormal)
UNAVAILABLE(curandGenerateLogNormalDouble)
UNAVAILABLE(curandGeneratePoisson)
