/// Vertical-slash heads of a layer, all in one launch per step (docs/MINFERENCE.md sections
/// 4-6): estimate column and diagonal scores from the last 64 queries, select the top verticals
/// and slashes, convert them to per-row-block index lists, run the sparse kernel.
struct VerticalSlashPipeline {
    static let lastQueries = 64
    static let rowBlock = 64

    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    /// Flattened query head of each slot.
    let slots: [Int32]
    /// Budgets after upstream's clamps, per slot.
    let budgets: [(vertical: Int, slash: Int)]
    let estimation: DeviceProfile.EstimationBackend
    /// Buffers from this workspace (nil: fresh ones per call).
    var workspace: Workspace? = nil
    var scratch: Scratch { Scratch(context: context, workspace: workspace) }

    /// Key length: the estimate scores n columns and diagonals.
    var n: Int { problem.keyLength }
    /// Position of query row 0 (0 in prefill; Nk - Nq for a chunk).
    var shift: Int { problem.keyLength - problem.queryLength }
    /// The first 64-position row block holding a query row, and the number of row blocks from it
    /// to the end: the index lists and the kernel's work-groups (all blocks in prefill).
    var firstRowBlock: Int { shift / Self.rowBlock }
    var rowBlocks: Int { (n + Self.rowBlock - 1) / Self.rowBlock - firstRowBlock }
    /// Queries the estimate reads: the last 64 (of the chunk, which are the prompt's when Nq >= 64).
    var lastRows: Int { min(Self.lastQueries, problem.queryLength) }

    /// Upstream's clamps: V = min(N, max(v, 30)), S = min(N, max(s, 50)).
    static func clamp(vertical: Int, slash: Int, length: Int) -> (vertical: Int, slash: Int) {
        (min(length, max(vertical, 30)), min(length, max(slash, 50)))
    }

    /// The index lists of every slot, in upstream's block form.
    struct Indices {
        /// [2 * slots, stride]: verticals (ascending) then slash offsets (ascending) per slot.
        var selection: TopKKernel.Selection
        var blockCount: DeviceBuffer
        var blockOffset: DeviceBuffer
        var nnzS: Int
        var columnCount: DeviceBuffer
        var columnIndex: DeviceBuffer
        var nnzV: Int
        /// [slots, rowBlocks] causal pairs covered (Int64).
        var coveredPairs: DeviceBuffer
    }

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws -> Indices {
        let scores = try estimate(q: tensors.q, k: tensors.k, slotBuffer: slotBuffer, events: &events)
        let indices = try buildIndices(scores: scores, events: &events)
        events.add(.kernel, try tensors.launch(
            "vertical_slash_attention", file: "sparse_attention.cl", options: attentionOptions, context: context,
            global: [rowBlocks * config.sparse.threads, slots.count], local: [config.sparse.threads, 1],
            [.buffer(slotBuffer),
             .buffer(indices.blockCount), .buffer(indices.blockOffset), .int(indices.nnzS),
             .buffer(indices.columnCount), .buffer(indices.columnIndex), .int(indices.nnzV),
             .int(problem.queryLength), .int(n), .int(firstRowBlock), .int(problem.headsQ), .int(problem.headsKV),
             .float(problem.scale * Float.log2e)]))
        return indices
    }

    var attentionOptions: BuildOptions {
        config.sparse.buildOptions(problem: problem)
    }

    /// Column scores then diagonal scores, [2 * slots, n] fp32 (LastQueryEstimate, with
    /// upstream's forced columns and diagonals).
    func estimate(q: DeviceTensor, k: DeviceTensor, slotBuffer: DeviceBuffer, events phases: inout PhaseEvents) throws -> DeviceBuffer {
        try LastQueryEstimate(context: context, problem: problem, slots: slots, lastQueries: Self.lastQueries,
                              forcedColumns: 30, forcedDiagonals: 100, backend: estimation, scratch: scratch)
            .scores(q: q, k: k, slotBuffer: slotBuffer, events: &phases)
    }

    func buildIndices(scores: DeviceBuffer, events: inout PhaseEvents) throws -> Indices {
        let s = slots.count
        let ks = budgets.map { Int32($0.vertical) } + budgets.map { Int32($0.slash) }
        let (selection, selectEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: scores, stride: n, count: 2 * s, length: n, causal: false, causalFirst: 0, rowsPerGroup: 1, kOfGroup: ks),
            scratch: scratch, role: "vertical-slash top-k")
        let nnzS = max(1, budgets.map(\.slash).max() ?? 1)
        let nnzV = max(1, budgets.map(\.vertical).max() ?? 1)
        let rows = s * rowBlocks
        let blockCount = try scratch.buffer("block_count", byteCount: rows * 4)
        let blockOffset = try scratch.buffer("block_offset", byteCount: rows * nnzS * 4)
        let columnCount = try scratch.buffer("column_count", byteCount: rows * 4)
        let columnIndex = try scratch.buffer("column_index", byteCount: rows * nnzV * 4)
        let pairs = try scratch.buffer("covered pairs", byteCount: rows * 8)
        let program = try context.program(KernelSource.named("vertical_slash_index.cl"), options: BuildOptions())
        let convertEvent = try context.launch(
            program, "vs_convert_indexes", global: [rowBlocks, s], local: nil,
            [.buffer(selection.indices), .buffer(selection.counts), .int(selection.stride), .int(s), .int(n), .int(shift),
             .buffer(blockCount), .buffer(blockOffset), .int(nnzS), .buffer(columnCount), .buffer(columnIndex), .int(nnzV),
             .buffer(pairs)])
        events.add(.indices, [selectEvent, convertEvent])
        return Indices(selection: selection, blockCount: blockCount, blockOffset: blockOffset, nnzS: nnzS,
                       columnCount: columnCount, columnIndex: columnIndex, nnzV: nnzV, coveredPairs: pairs)
    }
}
