/// What the attention kernels of one layer call need to give NaN and infinities plain softmax
/// attention's meaning (CLKernels/attention_path.h, `ATTENTION_TENSORS`; docs/NON-FINITE.md
/// section 1): which keys have a non-finite k or v row, and a count of those keys and of q's
/// non-finite chunks. On the device the count decides (attention_path.h, NONFINITE_KEYS): with 0
/// the kernels run without their flag code; otherwise they load flagged keys as zeros (so they
/// cannot reach a row that does not cover them, not even as 0 * NaN in P V) and write a row that
/// reads a non-finite value as NaN.
struct NonFiniteFlags {
    /// `[B * Hkv, stride]` bytes: 1 for a key whose k or v row is not finite (read only when
    /// `count` is non-zero).
    let keyFlags: DeviceBuffer
    /// Keys per KV head in `keyFlags`: the call's Nk (a launch over a prefix of the keys, as
    /// Tri-shape's A-shape part, keeps it).
    let stride: Int
    /// One Int32: flagged keys plus q's non-finite 16-byte chunks (0: all finite).
    let count: DeviceBuffer
    /// The NONFINITE_KEYS variants of an attention kernel a tensor-core launch enqueues: both
    /// after a scan, the flag-free one alone for inputs the host has checked (the portable path
    /// takes the run-time variant after a scan: `LayerTensors.launch`).
    let variants: [Int]

    /// The kernel arguments `key_flags, key_flag_stride, nonfinite_count`.
    var arguments: [KernelArgument] { [.buffer(keyFlags), .int(stride), .buffer(count)] }

    /// Enqueues nonfinite_keys.cl over k and v, then q (one coalesced read of each); returns the
    /// flags and the scan's events. Throws `OpenCLError` or `ProgramBuildError` when a call or
    /// the build fails.
    static func scan(context: ComputeContext, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor,
                     scratch: Scratch) throws -> (NonFiniteFlags, [CommandEvent]) {
        let kvHeads = problem.batch * problem.headsKV, n = problem.keyLength
        let flags = NonFiniteFlags(keyFlags: try scratch.buffer("key flags", byteCount: max(1, kvHeads * n)), stride: n,
                                   count: try scratch.buffer("non-finite count", byteCount: 4), variants: [0, 1])
        try flags.count.fill(pattern: 0, using: context)
        let rowChunks = problem.headDim * problem.inputDType.byteCount / 16
        let keysPerGroup = max(1, 256 / rowChunks)
        let program = try context.program(
            KernelSource.named("nonfinite_keys.cl"),
            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "HEAD_DIM": "\(problem.headDim)",
                                            "SCAN_KEYS": "\(keysPerGroup)"]))
        let keys = try context.launch(
            program, "nonfinite_keys", global: [(n + keysPerGroup - 1) / keysPerGroup * keysPerGroup * rowChunks, kvHeads],
            local: [keysPerGroup * rowChunks, 1],
            [.buffer(k.buffer), .buffer(v.buffer), .layout(k.layout), .layout(v.layout), .int(n), .int(problem.headsKV),
             .buffer(flags.keyFlags), .buffer(flags.count)])
        let queries = try context.launch(
            program, "nonfinite_rows", global: [problem.queryLength * rowChunks, problem.batch * problem.headsQ], local: nil,
            [.buffer(q.buffer), .layout(q.layout), .int(problem.queryLength), .int(problem.headsQ), .buffer(flags.count)])
        return (flags, [keys, queries])
    }

    /// Flags for inputs the host has checked to be finite: a zero count, no scan, one variant.
    static func none(context: ComputeContext, scratch: Scratch) throws -> NonFiniteFlags {
        let flags = NonFiniteFlags(keyFlags: try scratch.buffer("key flags", byteCount: 1), stride: 0,
                                   count: try scratch.buffer("non-finite count", byteCount: 4), variants: [0])
        try flags.count.fill(pattern: 0, using: context)
        return flags
    }
}
