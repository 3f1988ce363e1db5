/// Deterministic top-k of many score rows (CLKernels/topk.cl): the k largest per row, ties to the
/// smaller index, indices ascending.
struct TopKKernel {
    static let file = "topk.cl"
    static let threads = 256

    struct Rows {
        /// Scores of row r start at r * stride (fp32).
        var scores: DeviceBuffer
        var stride: Int
        var count: Int
        /// Length of every row, unless `causal` (then row r has causalFirst + (r % rowsPerGroup) + 1
        /// entries: a chunk's query blocks start at block causalFirst).
        var length: Int
        var causal: Bool
        var causalFirst = 0
        var rowsPerGroup: Int
        /// k of each group of rowsPerGroup rows (clamped to the row length by the kernel).
        var kOfGroup: [Int32]
        /// The k of each group computed on the device (int32), instead of `kOfGroup`; with it,
        /// `maxK` bounds every k (the output's row length).
        var kBuffer: DeviceBuffer? = nil
        var maxK = 0
        /// Rows sharing one k: `rowsPerGroup` (nil), or e.g. 1 for a k per row.
        var rowsPerK: Int? = nil
    }

    struct Selection {
        /// [rows, stride] selected indices, ascending; `counts[r]` of row r are valid.
        var indices: DeviceBuffer
        var counts: DeviceBuffer
        var stride: Int
    }

    /// Enqueues the selection; its buffers come from `scratch` (default: fresh ones) under `role`.
    static func enqueue(context: ComputeContext, _ rows: Rows, scratch: Scratch? = nil,
                        role: String = "top-k") throws -> (Selection, CommandEvent) {
        let scratch = scratch ?? Scratch(context: context, workspace: nil)
        let stride = max(1, rows.kBuffer == nil ? Int(rows.kOfGroup.max() ?? 1) : rows.maxK)
        let indices = try scratch.buffer("\(role) indices", byteCount: rows.count * stride * 4)
        let counts = try scratch.buffer("\(role) counts", byteCount: rows.count * 4)
        let ks = try rows.kBuffer ?? scratch.copying(rows.kOfGroup, "\(role) budgets")
        let program = try context.program(KernelSource.named(file), options: BuildOptions(defines: ["TOPK_THREADS": "\(threads)"]))
        let event = try context.launch(
            program, "topk_rows", global: [rows.count * threads], local: [threads],
            [.buffer(rows.scores), .ulong(UInt64(rows.stride)), .int(rows.length), .int(rows.causal ? 1 : 0),
             .int(rows.causalFirst), .int(rows.rowsPerGroup), .buffer(ks), .int(rows.rowsPerK ?? rows.rowsPerGroup), .buffer(indices), .int(stride), .buffer(counts)])
        return (Selection(indices: indices, counts: counts, stride: stride), event)
    }
}
