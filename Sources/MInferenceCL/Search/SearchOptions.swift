/// What the search tries per head and how it spends the budget. Every candidate is measured
/// at its real kernel cost; the budgets of each family are a ladder, each completed with the
/// largest second budget that fits a cost level.
public struct SearchOptions: Sendable, Hashable {
    /// Who shares the target cost.
    public enum Allocation: String, Sendable, Hashable, CaseIterable {
        /// The layer's heads share heads x target: a head whose attention is spread out (or whose
        /// slashes do not cluster) may take more than the target, a concentrated one less. The
        /// choice maximises the layer's mean recall (multiple-choice knapsack over the candidates).
        case layer
        /// Every head gets at most the target: each head's best candidate at equal cost.
        case head
    }

    /// The kernel cost one head may spend (on average over a layer's heads with `.layer`).
    public var target: SearchTarget
    /// Who shares the target; default `.layer`.
    public var allocation: Allocation
    /// Cost levels, as multiples of the target, at which candidates are made with `.layer`
    /// (capped at dense cost); `.head` uses the target alone.
    public var levels: [Double]
    /// A-shape sink budgets, each with the largest window that fits a level. Multiples of 64: a
    /// sink of 1 costs the same tile as a sink of 64.
    public var sinks: [Int]
    /// Vertical-slash vertical budgets (clamped to 30...N), each with the largest slash budget
    /// whose measured cost fits a level. Slash budgets start at 100, so upstream's forced
    /// diagonals (offsets 0..<100) are all selected and no tie among them decides what it runs.
    public var verticals: [Int]
    /// Score upstream's block-sparse (always 100 blocks) where its cost fits; it is dense up to
    /// N = 6400, where it never fits a sparse target.
    public var blockSparse: Bool
    /// Also find the best uniform vertical-slash config (one budget pair for every head of a
    /// layer) of the same total cost, the comparison of the report.
    public var uniformBaseline: Bool
    /// With `.layer`, offer the uniform config's budgets as candidates too: it is one way to
    /// spend the layer's budget, so the search then never does worse than it.
    public var uniformCandidates: Bool

    /// The default cost levels, as multiples of the target.
    public static let defaultLevels = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3]
    /// The default A-shape sink ladder (tokens).
    public static let defaultSinks = [64, 128, 256, 512, 1024, 2048, 4096, 8192]
    /// The default vertical-slash vertical ladder (key columns); 30 is upstream's lower clamp.
    public static let defaultVerticals = [30, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

    /// Options for `target`; every other setting defaults to the ladders and levels above, all
    /// three families, and the uniform vertical-slash comparison. Checked by ``validate()`` when
    /// a search starts.
    public init(target: SearchTarget, allocation: Allocation = .layer, levels: [Double] = defaultLevels, sinks: [Int] = defaultSinks,
                verticals: [Int] = defaultVerticals, blockSparse: Bool = true, uniformBaseline: Bool = true, uniformCandidates: Bool = true) {
        self.target = target
        self.allocation = allocation
        self.levels = levels
        self.sinks = sinks
        self.verticals = verticals
        self.blockSparse = blockSparse
        self.uniformBaseline = uniformBaseline
        self.uniformCandidates = uniformCandidates
    }

    /// Throws unless the target, levels and every ladder budget are valid:
    /// ``AttentionError/budget(_:)`` for a bad target, level or budget,
    /// ``AttentionError/invalidArgument(_:)`` when no candidate family is left.
    public func validate() throws {
        try target.validate()
        guard !sinks.isEmpty || !verticals.isEmpty || blockSparse else {
            throw AttentionError.invalidArgument("the search needs at least one candidate family (sinks, verticals or block-sparse)")
        }
        if let bad = (sinks + verticals).first(where: { $0 <= 0 || $0 > Int(Int32.max) }) {
            throw AttentionError.budget("ladder budgets must be integers from 1 to \(Int32.max), got \(bad)")
        }
        guard !levels.isEmpty, levels.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw AttentionError.budget("cost levels must be positive multiples of the target, got \(levels)")
        }
    }

    /// The cost levels in tiles at length `n` for a target of `target` tiles: ascending, distinct,
    /// between one tile per row block and dense cost.
    func levelTiles(target: KernelCost) -> [Int] {
        let n = target.length
        let factors = allocation == .head ? [1.0] : levels
        let dense = KernelCost.dense(length: n).tiles, floor = KernelCost.rowBlocks(length: n)
        return Array(Set(factors.map { min(dense, max(floor, Int((Double(target.tiles) * $0).rounded(.down)))) })).sorted()
    }
}
