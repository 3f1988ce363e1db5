/// The search's result for one calibration layer: every head's scored candidates and choice,
/// and the uniform vertical-slash config it is compared with.
public struct LayerSearch: Sendable {
    /// The layer folder.
    public var source: String
    /// The layer's causal prefill problem.
    public var problem: AttentionProblem
    /// The cost one head may spend (on average, with `.layer` allocation).
    public var target: KernelCost
    /// Who shared the target: the layer's heads, or each head alone.
    public var allocation: SearchOptions.Allocation
    /// Every query head's candidates and choice, in head order.
    public var heads: [HeadSearch]
    /// The best single vertical-slash budget pair for every head of the layer whose summed cost
    /// stays within heads x target (nil when not computed or when none fits).
    public var uniform: UniformVerticalSlash?

    /// The layer's budget: heads x target tiles.
    public var budgetTiles: Int { heads.count * target.tiles }
    /// Mean recall of the chosen patterns over the layer's heads.
    public var meanRecall: Double { heads.map(\.chosen.recall).reduce(0, +) / Double(max(heads.count, 1)) }
    /// Mean covered density of the chosen patterns.
    public var meanDensity: Double { heads.map(\.chosen.density).reduce(0, +) / Double(max(heads.count, 1)) }
    /// Summed cost of the chosen patterns.
    public var totalTiles: Int { heads.map(\.chosen.cost.tiles).reduce(0, +) }

    /// The best candidate of another kind than `head`'s choice within what the head could
    /// spend: the target with `.head` allocation, the chosen cost with `.layer`.
    public func alternative(head: HeadSearch) -> SearchCandidate? {
        head.alternative(costAtMost: allocation == .head ? max(target.tiles, head.chosen.cost.tiles) : head.chosen.cost.tiles)
    }
}

/// One query head: every candidate that was scored, best recall first, and the chosen one.
public struct HeadSearch: Sendable {
    /// The query head.
    public var head: Int
    /// Candidates in the search's order (`SearchCandidate.ranksAbove`).
    public var candidates: [SearchCandidate]
    /// Position of the chosen candidate in `candidates`.
    public var chosenIndex: Int
    /// Why a family offered nothing (e.g. block-sparse's 100 blocks cost more than allowed).
    public var notes: [String]

    /// The candidate the search chose for the head.
    public var chosen: SearchCandidate { candidates[chosenIndex] }

    /// The best candidate of another kind than the chosen one costing at most `tiles`: what
    /// the head would keep with another pattern at that price.
    public func alternative(costAtMost tiles: Int) -> SearchCandidate? {
        candidates.first { $0.pattern.kind != chosen.pattern.kind && $0.cost.tiles <= tiles }
    }
}

/// One vertical-slash budget pair for every head of a layer.
public struct UniformVerticalSlash: Sendable {
    /// The budget pair every head runs.
    public var pattern: HeadPattern
    /// Per head: its cost, coverage and recall with `pattern`.
    public var heads: [SearchCandidate]
    /// Every vertical budget tried, with its largest fitting slash budget and mean recall.
    public var tried: [(pattern: HeadPattern, meanRecall: Double, tiles: Int)]

    /// Mean recall over the layer's heads.
    public var meanRecall: Double { heads.map(\.recall).reduce(0, +) / Double(max(heads.count, 1)) }
    /// Mean covered density over the layer's heads.
    public var meanDensity: Double { heads.map(\.density).reduce(0, +) / Double(max(heads.count, 1)) }
    /// Summed cost of the heads in tiles.
    public var totalTiles: Int { heads.map(\.cost.tiles).reduce(0, +) }
}
