/// What a head's sparse kernel costs, counted the way the kernel works: the 64-query x 64-key
/// tiles it visits. Every visited tile costs the same `64 * 64 * 4 * d` FLOPs (QK^T and PV),
/// however many of its pairs the causal or A-shape mask then drops, so tiles are the kernel's
/// real FLOPs; covered pairs (`density`) are what the pattern keeps and are reported beside it.
///
/// The search compares candidates at equal cost in these units, which is the "FLOPs-equivalent"
/// comparison MInference's paper describes but its code only approximates with hand-picked
/// budgets (docs/MINFERENCE.md section 9): here vertical-slash windows widened to 64 keys, the
/// "grow by a whole block" merge and partly masked diagonal tiles are all paid for.
public struct KernelCost: Sendable, Hashable, CustomStringConvertible {
    /// Query rows per tile (upstream's row block).
    public static let tileRows = 64
    /// Keys per tile.
    public static let tileKeys = 64

    /// 64x64 tiles the kernel visits.
    public var tiles: Int
    /// Sequence length N the cost was counted at.
    public var length: Int

    /// A cost of `tiles` tiles at sequence length `length`.
    public init(tiles: Int, length: Int) {
        self.tiles = tiles
        self.length = length
    }

    /// Row blocks R = ceil(N / 64).
    public static func rowBlocks(length n: Int) -> Int { (n + tileRows - 1) / tileRows }

    /// Tiles of dense causal attention: row block m visits key tiles 0...m, R(R + 1) / 2 in all.
    public static func dense(length n: Int) -> KernelCost {
        let r = rowBlocks(length: n)
        return KernelCost(tiles: r * (r + 1) / 2, length: n)
    }

    /// A-shape (a_shape_attention.cl) in 64-row blocks, as upstream's kernel and our portable
    /// path run it: per row block [start, end), the sink keys [0, min(sink, end)) in
    /// ceil(sink_end / 64) tiles, then the window keys [max(sink_end, start - window + 1), end)
    /// in 64-key tiles. (The NVIDIA path's 128-row blocks cover the same pairs; their tiles differ
    /// only at the window's two edges.) Budgets above N count as N.
    public static func aShape(length n: Int, sink: Int, window: Int) -> KernelCost {
        let sink = min(sink, n), window = min(window, n)
        var tiles = 0
        for m in 0..<rowBlocks(length: n) {
            let start = m * tileRows, end = min(start + tileRows, n)
            let sinkEnd = min(sink, end)
            let windowBegin = max(sinkEnd, start - window + 1)
            tiles += (sinkEnd + tileKeys - 1) / tileKeys + (end - windowBegin + tileKeys - 1) / tileKeys
        }
        return KernelCost(tiles: tiles, length: n)
    }

    /// Tri-shape: the A-shape tiles of the rows before the last `last`, the dense causal tiles
    /// (ceil(end / 64) per 64-row block) of the rest; a block holding both kinds counts both.
    public static func triShape(length n: Int, sink: Int, window: Int, last: Int) -> KernelCost {
        let denseFrom = n - min(last, n)
        let sink = min(sink, n), window = min(window, n)
        var tiles = 0
        for m in 0..<rowBlocks(length: n) {
            let start = m * tileRows, end = min(start + tileRows, n)
            if start < denseFrom {
                let aEnd = min(end, denseFrom)
                let sinkEnd = min(sink, aEnd)
                let windowBegin = max(sinkEnd, start - window + 1)
                tiles += (sinkEnd + tileKeys - 1) / tileKeys + (aEnd - windowBegin + tileKeys - 1) / tileKeys
            }
            if end > denseFrom { tiles += (end + tileKeys - 1) / tileKeys }
        }
        return KernelCost(tiles: tiles, length: n)
    }

    /// Vertical-slash (vertical_slash_attention): per row block its block_count 64-key windows
    /// plus its column_count gathered columns, 64 per tile.
    public static func verticalSlash<C: Collection<Int32>>(length n: Int, blockCount: C, columnCount: C) -> KernelCost {
        precondition(blockCount.count == columnCount.count, "one block count and one column count per row block")
        let tiles = zip(blockCount, columnCount).reduce(0) { $0 + Int($1.0) + (Int($1.1) + tileKeys - 1) / tileKeys }
        return KernelCost(tiles: tiles, length: n)
    }

    /// Block-sparse with `blocks` key blocks per query block (block_sparse_attention): upstream
    /// clamps the budget to its padded block count floor(N / 64) + 1, and row block m reads
    /// min(m + 1, K) of its top-K blocks.
    public static func blockSparse(length n: Int, blocks: Int) -> KernelCost {
        let k = min(blocks, n / tileRows + 1)
        let tiles = (0..<rowBlocks(length: n)).reduce(0) { $0 + min($1 + 1, k) }
        return KernelCost(tiles: tiles, length: n)
    }

    /// Share of the dense causal kernel's tiles (its FLOPs share).
    public var share: Double {
        let dense = Self.dense(length: length).tiles
        return dense == 0 ? 0 : Double(tiles) / Double(dense)
    }

    /// FLOPs of the visited tiles: 4 * d per (query, key) slot of every tile.
    public func flops(headDim: Int) -> Double {
        Double(tiles) * Double(Self.tileRows * Self.tileKeys) * 4 * Double(headDim)
    }

    /// The tiles and their share of dense, e.g. `1056 tiles (25.3% of dense)`.
    public var description: String { "\(tiles) tiles (\(Format.fixed(100 * share, 1))% of dense)" }
}
