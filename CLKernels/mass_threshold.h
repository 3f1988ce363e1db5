/*
 * mass_threshold.h: how many of a row's largest entries fit under a cumulative-mass limit,
 * without sorting the row: the counting step of XAttention's and FlexPrefill's threshold rules
 * (docs/PREFILL-METHODS.md 4.7, 5.4, 5.7). The entries are then taken by topk.cl, whose order
 * (larger first, ties to the smaller index) is the one the count refers to.
 *
 *   P(p)     = sum of the p largest entries (p = 0 .. n; a prefix sum depends on the values only,
 *              so ties cannot change it)
 *   returns  the largest p with base + P(p) < limit (strict) or <= limit, -1 if p = 0 fails
 *
 * Method: the entries are non-negative, so their bit patterns order them. A binary search over
 * the 31-bit patterns finds the smallest t with base + (mass above t) within the limit; the
 * entries equal to t are then taken one by one, as far as they fit. 31 passes over the row, each
 * a work-group reduction in fp64 (the precision of upstream's selection, which runs in float64)
 * where the device has it.
 *
 * Entries must be >= 0 or NaN; `skip0` and `skip1` (-1: none) are left out (forced entries).
 * Every work-item of the group (MASS_THREADS) calls it and gets the same result.
 *
 * NaN: "within the limit" is written as "not beyond it" (!(s >= limit), !(s > limit)), so a NaN
 * sum or limit is within it. A NaN entry ranks first (topk.cl's order), so every prefix from 1
 * on holds it: with a NaN entry or limit every count fits and the result is the number of
 * entries (a NaN estimate keeps every candidate). A NaN entry's bits, of either sign, exceed
 * every t searched, so the search itself finds this (t = 0: all entries taken) in the same 31
 * passes. The float64 references evaluate the same comparisons.
 */
#ifndef MINFERENCECL_MASS_THRESHOLD_H
#define MINFERENCECL_MASS_THRESHOLD_H
#include "attention_common.h"

#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double mass_t;
#else
typedef float mass_t; /* devices without fp64: sums in fp32 (a near-threshold row may differ) */
#endif

#ifndef MASS_THREADS
#define MASS_THREADS 256 /* work-items per row; a power of 2 */
#endif

/* A float64 parameter (a threshold) sent as three fp32 parts (KernelArgument.exactDouble): their
 * fp64 sum is the host's value exactly; without fp64, the fp32 value. */
INLINE mass_t exact_parameter(float high, float middle, float low) { return ((mass_t)high + (mass_t)middle) + (mass_t)low; }

/* Work-group sums of a mass and of a count; every work-item gets them. */
#define GROUP_SUM(name, type)                                                                    \
    INLINE type name(type value, __local type* scratch) {                                        \
        const int lid = get_local_id(0);                                                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        scratch[lid] = value;                                                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                                                            \
        for (int s = MASS_THREADS / 2; s > 0; s >>= 1) {                                         \
            if (lid < s) scratch[lid] += scratch[lid + s];                                       \
            barrier(CLK_LOCAL_MEM_FENCE);                                                        \
        }                                                                                        \
        return scratch[0];                                                                       \
    }
GROUP_SUM(group_mass_sum, mass_t)
GROUP_SUM(group_count_sum, uint)

/* Mass of the entries whose bits exceed t. */
INLINE mass_t mass_above(__global const float* x, int n, int skip0, int skip1, uint t, __local mass_t* scratch) {
    mass_t sum = 0;
    for (int i = get_local_id(0); i < n; i += MASS_THREADS)
        if (i != skip0 && i != skip1 && as_uint(x[i]) > t) sum += (mass_t)x[i];
    return group_mass_sum(sum, scratch);
}

/* Not beyond the limit; NaN is within (the negations are deliberate: see above). */
INLINE bool within_limit(mass_t s, mass_t limit, int strict) { return strict ? !(s >= limit) : !(s > limit); }

INLINE int largest_prefix_within(__global const float* x, int n, int skip0, int skip1, mass_t base, mass_t limit,
                                 int strict, __local mass_t* mass_scratch, __local uint* count_scratch) {
    if (!within_limit(base, limit, strict)) return -1;
    /* smallest t whose mass above fits (t = +inf's bits always does: nothing finite is above) */
    uint lo = 0u, hi = 0x7f800000u;
    while (lo < hi) {
        const uint mid = lo + (hi - lo) / 2u;
        if (within_limit(base + mass_above(x, n, skip0, skip1, mid, mass_scratch), limit, strict)) hi = mid;
        else lo = mid + 1u;
    }
    const uint t = lo;
    uint above = 0u, equal = 0u;
    for (int i = get_local_id(0); i < n; i += MASS_THREADS) {
        if (i == skip0 || i == skip1) continue;
        const uint bits = as_uint(x[i]);
        above += bits > t;
        equal += bits == t;
    }
    above = group_count_sum(above, count_scratch);
    equal = group_count_sum(equal, count_scratch);
    const mass_t fitted = base + mass_above(x, n, skip0, skip1, t, mass_scratch);
    const mass_t value = (mass_t)as_float(t);
    /* the entries equal to t, one by one, while they fit (all of them when they weigh nothing) */
    uint take = equal;
    if (value > 0 && equal > 0) {
        const mass_t room = (limit - fitted) / value;
        take = room <= 0 ? 0u : (room >= (mass_t)equal ? equal : (uint)room);
        while (take > 0u && !within_limit(fitted + (mass_t)take * value, limit, strict)) --take;
        while (take < equal && within_limit(fitted + (mass_t)(take + 1u) * value, limit, strict)) ++take;
    }
    return (int)(above + take);
}

#endif
