/// Host copies of the index arrays a layer run used, per flattened query head (for
/// `--indices-out` and for checking against an independent reference).
public struct LayerIndices: Sendable {
    /// One entry per flattened query head (batch × Hq + h) that ran vertical-slash, in head order.
    public var verticalSlash: [VerticalSlashHeadIndices] = []
    /// One entry per flattened query head that ran block-sparse, in head order.
    public var blockSparse: [BlockSparseHeadIndices] = []
    /// One entry per flattened query head that ran XAttention, in head order (blocks of its
    /// block size).
    public var xAttention: [BlockSparseHeadIndices] = []
    /// One entry per flattened query head that ran FlexPrefill, in head order.
    public var flexPrefill: [FlexPrefillHeadIndices] = []
}

/// One FlexPrefill head's choice and blocks (docs/PREFILL-METHODS.md 5.5-5.8).
public struct FlexPrefillHeadIndices: Sendable {
    /// Whether the head was query-aware (Jensen-Shannon distance below tau); else it ran block
    /// vertical-slash.
    public var queryAware: Bool
    /// The Jensen-Shannon distance of the head's estimate (NaN where a pooled probability was 0).
    public var distance: Float
    /// The vertical key blocks selected (block 0 always among them), ascending.
    public var verticalBlocks: [Int32]
    /// The slash blocks s selected (block diagonal nb - 1 - s; nb - 1 always among them), ascending.
    public var slashBlocks: [Int32]
    /// The key blocks each query block visits (the union of the verticals, slashes and
    /// query-aware blocks).
    public var blocks: BlockSparseHeadIndices
}

/// One vertical-slash head's selection and upstream-format block index.
public struct VerticalSlashHeadIndices: Sendable {
    /// Flattened query head (batch * Hq + h).
    public var head: Int
    /// Selected key columns, ascending.
    public var verticals: [Int32]
    /// Selected diagonal offsets (i - j), descending as upstream's kernel takes them.
    public var slashOffsets: [Int32]
    /// Row blocks listed: the 64-position blocks from `firstRowBlock` (0 in prefill; the block of
    /// the chunk's first query in a chunked prefill) to the last key.
    public var rowBlocks: Int
    /// The position block (positions / 64) of the first row block listed: 0 in prefill,
    /// `(Nk - Nq) / 64` rounded down for a chunk.
    public var firstRowBlock: Int = 0
    /// Upstream's `block_count`, `[rowBlocks]`: the 64-key windows each row block visits.
    public var blockCount: [Int32]
    /// Upstream's `block_offset`, `[rowBlocks, nnzS]` row-major: the key start of each window;
    /// entries past a row's count are 0.
    public var blockOffset: [Int32]
    /// The row length of ``blockOffset``: this head's slash count (upstream's `NNZ_S`).
    public var nnzS: Int
    /// Upstream's `column_count`, `[rowBlocks]`: the single key columns each row block visits
    /// outside its windows.
    public var columnCount: [Int32]
    /// Upstream's `column_index`, `[rowBlocks, nnzV]` row-major: those columns, ascending;
    /// entries past a row's count are 0.
    public var columnIndex: [Int32]
    /// The row length of ``columnIndex``: this head's vertical count (upstream's `NNZ_V`).
    public var nnzV: Int

    static func download(_ indices: VerticalSlashPipeline.Indices, pipeline: VerticalSlashPipeline, heads: [Int32]) throws -> [VerticalSlashHeadIndices] {
        let s = heads.count, rows = pipeline.rowBlocks
        let stride = indices.selection.stride
        let selected = try indices.selection.indices.read(as: Int32.self, count: 2 * s * stride)
        let counts = try indices.selection.counts.read(as: Int32.self, count: 2 * s)
        let blockCount = try indices.blockCount.read(as: Int32.self, count: s * rows)
        let blockOffset = try indices.blockOffset.read(as: Int32.self, count: s * rows * indices.nnzS)
        let columnCount = try indices.columnCount.read(as: Int32.self, count: s * rows)
        let columnIndex = try indices.columnIndex.read(as: Int32.self, count: s * rows * indices.nnzV)
        return (0..<s).map { slot in
            let verticals = Array(selected[(slot * stride)..<(slot * stride + Int(counts[slot]))])
            let slashBase = (s + slot) * stride
            let offsets = Array(selected[slashBase..<(slashBase + Int(counts[s + slot]))].reversed())
            // Each head gets upstream's shape for its own budgets (NNZ_S = its slashes, NNZ_V = its
            // verticals); entries past a row's count are unspecified on the device and zeroed like upstream.
            let nnzS = offsets.count, nnzV = verticals.count
            var headOffsets = [Int32](repeating: 0, count: rows * nnzS)
            var headColumns = [Int32](repeating: 0, count: rows * nnzV)
            for r in 0..<rows {
                let row = slot * rows + r
                for e in 0..<Int(blockCount[row]) { headOffsets[r * nnzS + e] = blockOffset[row * indices.nnzS + e] }
                for e in 0..<Int(columnCount[row]) { headColumns[r * nnzV + e] = columnIndex[row * indices.nnzV + e] }
            }
            return VerticalSlashHeadIndices(
                head: Int(heads[slot]), verticals: verticals, slashOffsets: offsets, rowBlocks: rows, firstRowBlock: pipeline.firstRowBlock,
                blockCount: Array(blockCount[(slot * rows)..<((slot + 1) * rows)]), blockOffset: headOffsets, nnzS: nnzS,
                columnCount: Array(columnCount[(slot * rows)..<((slot + 1) * rows)]), columnIndex: headColumns, nnzV: nnzV)
        }
    }
}

/// One block-sparse head's selected key blocks per query block.
public struct BlockSparseHeadIndices: Sendable {
    /// Flattened query head (batch × Hq + h).
    public var head: Int
    /// Per query block firstQueryBlock + m < ceil(Nk / blockSize), the key blocks visited, ascending.
    public var selected: [[Int32]]
    /// The block of the first query: 0 in prefill, (Nk - Nq) / blockSize for a chunk.
    public var firstQueryBlock: Int = 0
    /// Rows per query block and keys per key block: 64 for block-sparse, the method's block size
    /// (default 128) for XAttention and FlexPrefill.
    public var blockSize: Int = 64

    /// (query block, key block) pairs, sorted; query blocks are positions / blockSize.
    public var pairs: [(queryBlock: Int32, keyBlock: Int32)] {
        selected.enumerated().flatMap { m, blocks in blocks.map { (Int32(firstQueryBlock + m), $0) } }
    }

    /// The same key set in 64-row blocks of 64-key blocks (the block-sparse kernel's and
    /// recall.cl's granularity): each listed block of B keys is B / 64 blocks, for each of the
    /// B / 64 row blocks of its query block, up to the length `n`. A prefill's lists only.
    func in64Blocks(length n: Int) -> BlockSparseHeadIndices {
        guard blockSize != 64 else { return self }
        let parts = blockSize / 64, rows = (n + 63) / 64
        let selected = (0..<rows).map { m -> [Int32] in
            let list = m / parts < self.selected.count ? self.selected[m / parts] : []
            return list.flatMap { b in (0..<parts).map { Int32(Int(b) * parts + $0) } }.filter { Int($0) * 64 < n && Int($0) <= m }
        }
        return BlockSparseHeadIndices(head: head, selected: selected, firstQueryBlock: firstQueryBlock * parts, blockSize: 64)
    }

    /// Causal pairs the kernel covers with these blocks for the query positions from `first`
    /// (0 in prefill, Nk - Nq for a chunk) to the key length n.
    func coveredPairs(length n: Int, first: Int = 0) -> Int {
        var total = 0
        let size = blockSize
        for (i, blocks) in selected.enumerated() where (firstQueryBlock + i) * size < n {
            let m = firstQueryBlock + i
            let rowBegin = max(m * size, first), rowEnd = min(m * size + size, n)
            for b in blocks {
                let lo = Int(b) * size
                total += causalPairs(rows: rowBegin..<rowEnd, keys: lo..<min(lo + size, n))
            }
        }
        return total
    }

    static func download(_ selection: TopKKernel.Selection, pipeline: BlockSparsePipeline, heads: [Int32]) throws -> [BlockSparseHeadIndices] {
        let qb = pipeline.queryBlocks, s = heads.count
        let all = try selection.indices.read(as: Int32.self, count: s * qb * selection.stride)
        let counts = try selection.counts.read(as: Int32.self, count: s * qb)
        // Upstream's extra padding block holds no query rows: it is not reported.
        return (0..<s).map { slot in
            BlockSparseHeadIndices(head: Int(heads[slot]), selected: (0..<pipeline.rowBlocks).map { m in
                let row = slot * qb + m
                return Array(all[(row * selection.stride)..<(row * selection.stride + Int(counts[row]))])
            }, firstQueryBlock: pipeline.firstQueryBlock)
        }
    }
}

/// Pairs (i, j) with i in `rows`, j in `keys`, j <= i.
func causalPairs(rows: Range<Int>, keys: Range<Int>) -> Int {
    guard !rows.isEmpty, !keys.isEmpty else { return 0 }
    func ramp(_ x: Int, _ w: Int) -> Int { x <= 0 ? 0 : x <= w ? x * (x + 1) / 2 : w * (w + 1) / 2 + (x - w) * w }
    let w = keys.count
    return ramp(rows.upperBound - keys.lowerBound, w) - ramp(rows.lowerBound - keys.lowerBound, w)
}
