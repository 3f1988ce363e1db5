/// The keys of a layer call whose K or V row holds a NaN or an infinity, as every attention
/// kernel reads them (CLKernels/attention_path.h, `ATTENTION_TENSORS`): a flagged key enters the
/// products as zeros, so its bits cannot reach a row that does not cover it, and a row that covers
/// one is written as NaN, as plain softmax attention makes it (docs/NON-FINITE.md section 1).
struct KeyFlags {
    /// `[B * Hkv, stride]` bytes: 1 for a flagged key (read only when `count` is non-zero).
    let flags: DeviceBuffer
    /// Keys per KV head in `flags`: the call's Nk (a launch over a prefix of the keys, as
    /// Tri-shape's A-shape part, keeps it).
    let stride: Int
    /// One Int32: the number of flagged keys (0: the kernels run as without flags).
    let count: DeviceBuffer
    /// The NONFINITE_KEYS variants of an attention kernel a launch enqueues (attention_path.h):
    /// both after a scan (the count decides on the device which one computes), the flag-free one
    /// alone for inputs the host has checked.
    let variants: [Int]

    /// The kernel arguments `key_flags, key_flag_stride, flagged_keys`.
    var arguments: [KernelArgument] { [.buffer(flags), .int(stride), .buffer(count)] }

    /// Enqueues nonfinite_keys.cl over k and v (one read of each); returns the flags and the
    /// scan's event. Throws `OpenCLError` or `ProgramBuildError` when a call or the build fails.
    static func scan(context: ComputeContext, problem: AttentionProblem, k: DeviceTensor, v: DeviceTensor,
                     scratch: Scratch) throws -> (KeyFlags, CommandEvent) {
        let heads = problem.batch * problem.headsKV, n = problem.keyLength
        let flags = KeyFlags(flags: try scratch.buffer("key flags", byteCount: max(1, heads * n)), stride: n,
                             count: try scratch.buffer("flagged key count", byteCount: 4), variants: [0, 1])
        _ = try flags.count.enqueueWrite([Int32(0)])
        let program = try context.program(
            KernelSource.named("nonfinite_keys.cl"),
            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "HEAD_DIM": "\(problem.headDim)"]))
        let scan = try context.launch(
            program, "nonfinite_keys", global: [n, heads], local: [64, 1],
            [.buffer(k.buffer), .buffer(v.buffer), .layout(k.layout), .layout(v.layout), .int(n), .int(problem.headsKV),
             .buffer(flags.flags), .buffer(flags.count)])
        return (flags, scan)
    }

    /// Flags for inputs the host has already checked to be finite: a zero count, no scan.
    static func none(scratch: Scratch) throws -> KeyFlags {
        KeyFlags(flags: try scratch.buffer("key flags", byteCount: 1), stride: 0,
                 count: try scratch.copying([Int32(0)], "flagged key count"), variants: [0])
    }
}
