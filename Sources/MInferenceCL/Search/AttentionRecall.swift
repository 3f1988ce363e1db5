/// Attention recall of covered key sets on the device (CLKernels/recall.cl): the share of each
/// query's dense causal softmax mass that falls on the keys a head's kernel visits, averaged
/// over the queries. It is the search's score and works at any length without an N x N matrix:
/// the dense row maxima and sums are computed once per layer (O(N) memory per head), then every
/// covered set costs one pass over its own tiles (QK^T only).
///
/// Prefill only (causal, Nq = Nk), like the sparse patterns it scores.
public final class AttentionRecall: @unchecked Sendable {
    static let file = "recall.cl"
    static let rows = 64

    /// The layer's problem: causal prefill, `Nq == Nk`.
    public let problem: AttentionProblem
    let context: ComputeContext
    let q: DeviceBuffer
    let k: DeviceBuffer
    /// Dense row maxima (log2 domain, scaled) and sums, [B * Hq, N] fp32.
    let rowMax: DeviceBuffer
    let rowSum: DeviceBuffer

    /// QK^T FLOPs one launch may do at most (whole slots, at least one): about a second on a
    /// GPU, where display drivers stop much longer kernels.
    public let launchFLOPs: Double

    /// Computes the dense row statistics of every query head of `q` and `k` (waits for them).
    /// `q` is `[B, Hq, N, d]` (or `[Hq, N, d]`) and `k` `[B, Hkv, N, d]`, both in the problem's input
    /// dtype. Throws ``AttentionError/unsupported(_:)`` for a problem that is not causal prefill,
    /// ``AttentionError/shape(_:)`` for tensors that do not match it, ``DeviceMemoryError`` or
    /// ``OpenCLError`` from the device.
    public init(context: ComputeContext, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, launchFLOPs: Double = 1e12) throws {
        guard problem.causal, problem.queryLength == problem.keyLength else {
            throw AttentionError.unsupported("recall is defined for causal prefill (Nq == Nk); got \(problem)")
        }
        let heads = problem.batch * problem.headsQ, n = problem.queryLength
        guard q.elementCount == heads * n * problem.headDim, k.elementCount == problem.batch * problem.headsKV * n * problem.headDim,
              q.dtype == problem.inputDType, k.dtype == problem.inputDType else {
            throw AttentionError.shape("q \(q.shape) \(q.dtype) and k \(k.shape) \(k.dtype) do not match \(problem)")
        }
        self.context = context
        self.problem = problem
        self.launchFLOPs = launchFLOPs
        self.q = q.buffer
        self.k = k.buffer
        rowMax = try DeviceBuffer(context: context, byteCount: heads * n * 4, label: "recall row max")
        rowSum = try DeviceBuffer(context: context, byteCount: heads * n * 4, label: "recall row sum")
        let slots = try DeviceBuffer(context: context, copying: (0..<heads).map { Int32($0) }, label: "recall heads")
        let program = try program()
        for chunk in chunks(heads) {
            try context.launch(program, "dense_row_stats", global: [rowBlocks * Self.rows, chunk.count], local: [Self.rows, 1],
                               [.buffer(self.q), .buffer(self.k), .buffer(slots), .int(chunk.lowerBound), .int(n), .int(problem.headsQ),
                                .int(problem.headsKV), .float(scaleLog2), .buffer(rowMax), .buffer(rowSum)]).wait()
        }
    }

    /// `slots` split into launches of at most `launchFLOPs` of dense QK^T work each.
    func chunks(_ slots: Int) -> [Range<Int>] {
        let perSlot = 2 * Double(problem.headDim) * Double(n) * Double(n + 1) / 2
        let size = max(1, min(slots, Int(min(launchFLOPs / perSlot, Double(Int32.max)))))
        return stride(from: 0, to: slots, by: size).map { $0..<min($0 + size, slots) }
    }

    var n: Int { problem.queryLength }
    var rowBlocks: Int { KernelCost.rowBlocks(length: n) }
    var scaleLog2: Float { problem.scale * Float.log2e }

    func program() throws -> Program {
        try context.program(KernelSource.named(Self.file),
                            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "HEAD_DIM": "\(problem.headDim)"]))
    }

    /// Mean recall over the queries of each (flattened head, coverage) pair, in order: a value in
    /// [0, 1] per pair. Heads are flattened (`b * Hq + h`); throws
    /// ``AttentionError/invalidArgument(_:)`` for a head outside `0..<B * Hq`.
    public func recall(_ coverages: [(head: Int, coverage: HeadCoverage)]) throws -> [Double] {
        let heads = problem.batch * problem.headsQ
        if let bad = coverages.first(where: { !(0..<heads).contains($0.head) }) {
            throw AttentionError.invalidArgument("head \(bad.head) outside 0..<\(heads) (flattened batch * Hq)")
        }
        var result = [Double](repeating: 0, count: coverages.count)
        var aShape: [(slot: Int, head: Int, sink: Int, window: Int, denseFrom: Int)] = []
        var verticalSlash: [(slot: Int, head: Int, index: VerticalSlashHeadIndices)] = []
        var blockSparse: [(slot: Int, head: Int, index: BlockSparseHeadIndices)] = []
        for (slot, (head, coverage)) in coverages.enumerated() {
            switch coverage {
            case .dense: aShape.append((slot, head, n, n, n))
            case .aShape(let sink, let window): aShape.append((slot, head, sink, window, n))
            case .triShape(let sink, let window, let last): aShape.append((slot, head, sink, window, n - min(last, n)))
            case .verticalSlash(let index): verticalSlash.append((slot, head, index))
            case .blockSparse(let index): blockSparse.append((slot, head, index.in64Blocks(length: n)))
            }
        }
        for (entry, value) in zip(aShape, try recall(aShape: aShape.map { ($0.head, $0.sink, $0.window, $0.denseFrom) })) {
            result[entry.slot] = value
        }
        if !verticalSlash.isEmpty {
            let values = try recall(verticalSlash: verticalSlash.map { Int32($0.head) }, indices: try upload(verticalSlash.map(\.index)))
            for (entry, value) in zip(verticalSlash, values) { result[entry.slot] = value }
        }
        if !blockSparse.isEmpty {
            let (selection, blocksPerHead) = try upload(blockSparse.map(\.index))
            let values = try recall(blockSparse: blockSparse.map { Int32($0.head) }, selection: selection, blocksPerHead: blocksPerHead)
            for (entry, value) in zip(blockSparse, values) { result[entry.slot] = value }
        }
        return result
    }

    // MARK: One launch per pattern kind

    /// A-shape slots (budgets above N count as N, as in AShapeKernel); rows from `denseFrom` on
    /// cover every key (Tri-shape's tail; N for A-shape and dense).
    func recall(aShape slots: [(head: Int, sink: Int, window: Int, denseFrom: Int)]) throws -> [Double] {
        guard !slots.isEmpty else { return [] }
        let sinks = try DeviceBuffer(context: context, copying: slots.map { Int32(min($0.sink, n)) }, label: "recall sinks")
        let windows = try DeviceBuffer(context: context, copying: slots.map { Int32(min($0.window, n)) }, label: "recall windows")
        let denseFrom = try DeviceBuffer(context: context, copying: slots.map { Int32($0.denseFrom) }, label: "recall dense rows")
        return try launch("covered_mass_a_shape", heads: slots.map { Int32($0.head) }, [.buffer(sinks), .buffer(windows), .buffer(denseFrom)])
    }

    /// Vertical-slash slots over index lists laid out as VerticalSlashPipeline builds them
    /// (row `slot * R + m`).
    func recall(verticalSlash heads: [Int32], indices: VerticalSlashPipeline.Indices) throws -> [Double] {
        try launch("covered_mass_vertical_slash", heads: heads,
                   [.buffer(indices.blockCount), .buffer(indices.blockOffset), .int(indices.nnzS), .buffer(indices.columnCount),
                    .buffer(indices.columnIndex), .int(indices.nnzV)])
    }

    /// Block-sparse slots over a top-k selection (row `slot * blocksPerHead + m`).
    func recall(blockSparse heads: [Int32], selection: TopKKernel.Selection, blocksPerHead: Int) throws -> [Double] {
        try launch("covered_mass_block_sparse", heads: heads,
                   [.buffer(selection.indices), .buffer(selection.counts), .int(selection.stride), .int(blocksPerHead)])
    }

    private func launch(_ name: String, heads: [Int32], _ lists: [KernelArgument]) throws -> [Double] {
        guard !heads.isEmpty else { return [] }
        let slots = heads.count, r = rowBlocks
        let headBuffer = try DeviceBuffer(context: context, copying: heads, label: "recall slots")
        let partial = try DeviceBuffer(context: context, byteCount: slots * r * 4, label: "recall partial sums")
        let program = try program()
        for chunk in chunks(slots) {
            let arguments: [KernelArgument] = [.buffer(q), .buffer(k), .buffer(headBuffer), .int(chunk.lowerBound), .buffer(rowMax),
                                               .buffer(rowSum)] + lists
                + [.int(n), .int(problem.headsQ), .int(problem.headsKV), .float(scaleLog2), .buffer(partial)]
            try context.launch(program, name, global: [r * Self.rows, chunk.count], local: [Self.rows, 1], arguments).wait()
        }
        let sums = try partial.read(as: Float.self, count: slots * r)
        return (0..<slots).map { s in sums[(s * r)..<((s + 1) * r)].reduce(0.0) { $0 + Double($1) } / Double(n) }
    }

    // MARK: Host index lists to the device

    private func upload(_ heads: [VerticalSlashHeadIndices]) throws -> VerticalSlashPipeline.Indices {
        let r = rowBlocks
        let nnzS = max(1, heads.map(\.nnzS).max() ?? 1), nnzV = max(1, heads.map(\.nnzV).max() ?? 1)
        var blockOffset = [Int32](repeating: 0, count: heads.count * r * nnzS)
        var columnIndex = [Int32](repeating: 0, count: heads.count * r * nnzV)
        for (s, index) in heads.enumerated() {
            guard index.rowBlocks == r, index.firstRowBlock == 0 else {
                throw AttentionError.shape("vertical-slash indices of \(index.rowBlocks) row blocks from block \(index.firstRowBlock); the recall of a length-\(n) prefill needs \(r) from block 0")
            }
            for m in 0..<r {
                for e in 0..<Int(index.blockCount[m]) { blockOffset[(s * r + m) * nnzS + e] = index.blockOffset[m * index.nnzS + e] }
                for e in 0..<Int(index.columnCount[m]) { columnIndex[(s * r + m) * nnzV + e] = index.columnIndex[m * index.nnzV + e] }
            }
        }
        let empty = try DeviceBuffer(context: context, byteCount: 0, label: "unused")
        return VerticalSlashPipeline.Indices(
            selection: TopKKernel.Selection(indices: empty, counts: empty, stride: 1),
            blockCount: try DeviceBuffer(context: context, copying: heads.flatMap(\.blockCount), label: "block_count"),
            blockOffset: try DeviceBuffer(context: context, copying: blockOffset, label: "block_offset"), nnzS: nnzS,
            columnCount: try DeviceBuffer(context: context, copying: heads.flatMap(\.columnCount), label: "column_count"),
            columnIndex: try DeviceBuffer(context: context, copying: columnIndex, label: "column_index"), nnzV: nnzV,
            coveredPairs: empty)
    }

    private func upload(_ heads: [BlockSparseHeadIndices]) throws -> (TopKKernel.Selection, Int) {
        let r = rowBlocks
        let stride = max(1, heads.flatMap { $0.selected.map(\.count) }.max() ?? 1)
        var indices = [Int32](repeating: 0, count: heads.count * r * stride)
        var counts = [Int32](repeating: 0, count: heads.count * r)
        for (s, index) in heads.enumerated() {
            guard index.selected.count == r, index.firstQueryBlock == 0 else {
                throw AttentionError.shape("block-sparse indices of \(index.selected.count) query blocks from block \(index.firstQueryBlock); the recall of a length-\(n) prefill needs \(r) from block 0")
            }
            for (m, blocks) in index.selected.enumerated() {
                counts[s * r + m] = Int32(blocks.count)
                for (e, b) in blocks.enumerated() { indices[(s * r + m) * stride + e] = b }
            }
        }
        let selection = TopKKernel.Selection(indices: try DeviceBuffer(context: context, copying: indices, label: "block selection"),
                                             counts: try DeviceBuffer(context: context, copying: counts, label: "block counts"),
                                             stride: stride)
        return (selection, r)
    }
}
