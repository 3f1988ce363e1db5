/// The keys one head's kernel covers, as the kernel visits them: the budgets of an analytic
/// pattern, or the index lists a data-dependent pattern's pipeline built. It answers "which keys
/// does query i see" on the host (coverage pictures, reports) and "what does it cost"
/// (`KernelCost`); the device scores the same sets with recall.cl.
public enum HeadCoverage: Sendable {
    /// Every causal key.
    case dense
    /// The first `sink` keys and the last `window` keys up to the query (budgets above N count as N).
    case aShape(sink: Int, window: Int)
    /// The 64-key windows and columns of a vertical-slash head's block-form index.
    case verticalSlash(VerticalSlashHeadIndices)
    /// The key blocks a block-sparse, XAttention or FlexPrefill head selected per query block
    /// (of the index's block size).
    case blockSparse(BlockSparseHeadIndices)
    /// A-shape before the last `last` queries, every causal key for those.
    case triShape(sink: Int, window: Int, last: Int)

    /// The coverage of `head` (flattened) in a layer run made with `SparseOptions.collectIndices`.
    /// Throws ``AttentionError/invalidArgument(_:)`` when the head's indices were not collected.
    public init(report: LayerResult, head: Int) throws {
        let pattern = report.executed[head % report.problem.headsQ]
        switch pattern {
        case .dense: self = .dense
        case .aShape(let sink, let window): self = .aShape(sink: sink, window: window)
        case .verticalSlash:
            guard let index = report.indices.verticalSlash.first(where: { $0.head == head }) else {
                throw AttentionError.invalidArgument("head \(head) ran vertical-slash but its indices were not collected (SparseOptions.collectIndices)")
            }
            self = .verticalSlash(index)
        case .blockSparse:
            guard let index = report.indices.blockSparse.first(where: { $0.head == head }) else {
                throw AttentionError.invalidArgument("head \(head) ran block-sparse but its indices were not collected (SparseOptions.collectIndices)")
            }
            self = .blockSparse(index)
        case .triShape(let sink, let window, let last): self = .triShape(sink: sink, window: window, last: last)
        case .xAttention:
            guard let index = report.indices.xAttention.first(where: { $0.head == head }) else {
                throw AttentionError.invalidArgument("head \(head) ran xattention but its indices were not collected (SparseOptions.collectIndices)")
            }
            self = .blockSparse(index)
        case .flexPrefill:
            guard let index = report.indices.flexPrefill.first(where: { $0.blocks.head == head }) else {
                throw AttentionError.invalidArgument("head \(head) ran flexprefill but its indices were not collected (SparseOptions.collectIndices)")
            }
            self = .blockSparse(index.blocks)
        }
    }

    /// The covered keys of query `i` (0 <= i < n) as disjoint ranges inside 0...i, in the
    /// order the kernel visits them: A-shape sinks then window; vertical-slash windows then
    /// columns; block-sparse blocks ascending.
    public func ranges(query i: Int, length n: Int) -> [Range<Int>] {
        let visible = 0..<(i + 1)
        func clip(_ r: Range<Int>) -> Range<Int>? {
            let c = r.clamped(to: visible)
            return c.isEmpty ? nil : c
        }
        switch self {
        case .dense:
            return [visible]
        case .aShape(let sink, let window):
            let windowStart = max(0, i - min(window, n) + 1)
            return [clip(0..<min(sink, windowStart)), clip(windowStart..<(i + 1))].compactMap { $0 }
        case .triShape(let sink, let window, let last):
            return i >= n - min(last, n) ? [visible] : HeadCoverage.aShape(sink: sink, window: window).ranges(query: i, length: n)
        case .verticalSlash, .blockSparse:
            return rowBlockRanges(i / rowBlockSize, length: n).compactMap(clip)
        }
    }

    /// Tiles the head's kernel visits at length `n`.
    public func cost(length n: Int) -> KernelCost {
        switch self {
        case .dense: KernelCost.dense(length: n)
        case .aShape(let sink, let window): KernelCost.aShape(length: n, sink: sink, window: window)
        case .verticalSlash(let index): KernelCost.verticalSlash(length: n, blockCount: index.blockCount, columnCount: index.columnCount)
        case .blockSparse(let index):
            KernelCost(tiles: index.selected.reduce(0) { $0 + $1.count } * (index.blockSize / 64) * (index.blockSize / 64), length: n)
        case .triShape(let sink, let window, let last): KernelCost.triShape(length: n, sink: sink, window: window, last: last)
        }
    }

    /// Causal (query, key) pairs covered at length `n`.
    public func coveredPairs(length n: Int) -> Int {
        switch self {
        case .dense: return n * (n + 1) / 2
        case .aShape(let sink, let window): return AShapeKernel.coveredPairs(length: n, sink: min(sink, n), window: min(window, n))
        case .triShape(let sink, let window, let last):
            let denseFrom = n - min(last, n)
            return AShapeKernel.coveredPairs(positions: 0..<denseFrom, sink: min(sink, n), window: min(window, n))
                + (denseFrom..<n).reduce(0) { $0 + $1 + 1 }
        case .verticalSlash, .blockSparse:
            var pairs = 0
            let size = rowBlockSize
            for m in 0..<((n + size - 1) / size) {
                let rows = (m * size)..<min(m * size + size, n)
                for keys in rowBlockRanges(m, length: n) { pairs += causalPairs(rows: rows, keys: keys) }
            }
            return pairs
        }
    }

    /// The key ranges every row of row block `m` may read before the causal mask (index-list
    /// patterns only: vertical-slash windows then columns, block-sparse blocks), clipped to N.
    func rowBlockRanges(_ m: Int, length n: Int) -> [Range<Int>] {
        func window(_ lo: Int) -> Range<Int>? { lo < n ? lo..<min(lo + rowBlockSize, n) : nil }
        switch self {
        case .dense, .aShape, .triShape: preconditionFailure("per-row-block ranges exist for index-list patterns only")
        case .verticalSlash(let index):
            return (0..<Int(index.blockCount[m])).compactMap { window(Int(index.blockOffset[m * index.nnzS + $0])) }
                + (0..<Int(index.columnCount[m])).map { e in
                    let c = Int(index.columnIndex[m * index.nnzV + e])
                    return c..<(c + 1)
                }
        case .blockSparse(let index):
            return index.selected[m].compactMap { window(Int($0) * index.blockSize) }
        }
    }

    /// Rows per index row (and keys per listed block): 64, or a block list's block size.
    var rowBlockSize: Int {
        if case .blockSparse(let index) = self { return index.blockSize }
        return KernelCost.tileRows
    }
}
