/// One scored option for one head: a pattern with budgets, what its kernel visits and covers on
/// the calibration input, and its recall there.
public struct SearchCandidate: Sendable, Hashable {
    /// The pattern with budgets, as it would be written to the config.
    public var pattern: HeadPattern
    /// The tiles the head's kernel visits with `pattern` on the calibration input.
    public var cost: KernelCost
    /// Causal (query, key) pairs the kernel covers.
    public var coveredPairs: Int
    /// Mean over the queries of the dense softmax mass inside the covered set.
    public var recall: Double

    /// A candidate with its measured cost, coverage and recall.
    public init(pattern: HeadPattern, cost: KernelCost, coveredPairs: Int, recall: Double) {
        self.pattern = pattern
        self.cost = cost
        self.coveredPairs = coveredPairs
        self.recall = recall
    }

    /// Covered share of the N(N + 1) / 2 causal pairs.
    public var density: Double {
        let n = Double(cost.length)
        return n == 0 ? 0 : Double(coveredPairs) / (n * (n + 1) / 2)
    }

    /// The search's order: higher recall, then lower cost, then A-shape before vertical-slash
    /// before block-sparse, then smaller budgets. Total, so the choice is deterministic.
    public static func ranksAbove(_ a: SearchCandidate, _ b: SearchCandidate) -> Bool {
        if a.recall != b.recall { return a.recall > b.recall }
        if a.cost.tiles != b.cost.tiles { return a.cost.tiles < b.cost.tiles }
        return a.pattern.searchOrder.lexicographicallyPrecedes(b.pattern.searchOrder)
    }
}

extension HeadPattern {
    /// Kind rank, then budgets: the last tie-break of the search.
    var searchOrder: [Int] {
        switch self {
        case .dense: [0]
        case .aShape(let sink, let window): [1, sink, window]
        case .verticalSlash(let v, let s): [2, v, s]
        case .blockSparse(let blocks): [3, blocks]
        case .triShape(let sink, let window, let last): [4, sink, window, last]
        case .xAttention, .flexPrefill: [5]
        }
    }
}
