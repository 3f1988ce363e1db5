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
    /// The key blocks a block-sparse head selected per query block.
    case blockSparse(BlockSparseHeadIndices)

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
        let m = i / KernelCost.tileRows
        switch self {
        case .dense:
            return [visible]
        case .aShape(let sink, let window):
            let windowStart = max(0, i - min(window, n) + 1)
            return [clip(0..<min(sink, windowStart)), clip(windowStart..<(i + 1))].compactMap { $0 }
        case .verticalSlash, .blockSparse:
            return rowBlockRanges(m, length: n).compactMap(clip)
        }
    }

    /// Tiles the head's kernel visits at length `n`.
    public func cost(length n: Int) -> KernelCost {
        switch self {
        case .dense: KernelCost.dense(length: n)
        case .aShape(let sink, let window): KernelCost.aShape(length: n, sink: sink, window: window)
        case .verticalSlash(let index): KernelCost.verticalSlash(length: n, blockCount: index.blockCount, columnCount: index.columnCount)
        case .blockSparse(let index): KernelCost(tiles: index.selected.reduce(0) { $0 + $1.count }, length: n)
        }
    }

    /// Causal (query, key) pairs covered at length `n`.
    public func coveredPairs(length n: Int) -> Int {
        switch self {
        case .dense: return n * (n + 1) / 2
        case .aShape(let sink, let window): return AShapeKernel.coveredPairs(length: n, sink: min(sink, n), window: min(window, n))
        case .verticalSlash, .blockSparse:
            var pairs = 0
            for m in 0..<KernelCost.rowBlocks(length: n) {
                let rows = (m * KernelCost.tileRows)..<min(m * KernelCost.tileRows + KernelCost.tileRows, n)
                for keys in rowBlockRanges(m, length: n) { pairs += causalPairs(rows: rows, keys: keys) }
            }
            return pairs
        }
    }

    /// The key ranges every row of row block `m` may read before the causal mask (index-list
    /// patterns only: vertical-slash windows then columns, block-sparse blocks), clipped to N.
    func rowBlockRanges(_ m: Int, length n: Int) -> [Range<Int>] {
        func window(_ lo: Int) -> Range<Int>? { lo < n ? lo..<min(lo + KernelCost.tileKeys, n) : nil }
        switch self {
        case .dense, .aShape: preconditionFailure("per-row-block ranges exist for index-list patterns only")
        case .verticalSlash(let index):
            return (0..<Int(index.blockCount[m])).compactMap { window(Int(index.blockOffset[m * index.nnzS + $0])) }
                + (0..<Int(index.columnCount[m])).map { e in
                    let c = Int(index.columnIndex[m * index.nnzV + e])
                    return c..<(c + 1)
                }
        case .blockSparse(let index):
            return index.selected[m].compactMap { window(Int($0) * KernelCost.tileKeys) }
        }
    }
}
