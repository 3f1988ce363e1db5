import RealModule

/// What the vertical-slash estimate of one head saw and chose (section 4).
package struct VerticalSlashSelection: Sendable, Equatable {
    /// `colsum[j]`, j in `0..<N`: attention mass of the last `L` queries on key column j;
    /// columns `0..<30` are +inf (forced).
    package var columnScores: [Double]
    /// `diag[o]`, o in `0..<N`: raw (not normalised) mass on the diagonal `i - j = o` over the
    /// last `L` queries; offsets `0..<100` are +inf (forced).
    package var diagonalScores: [Double]
    /// Selected key columns, ascending.
    package var verticals: [Int]
    /// Selected diagonal offsets `o = i - j >= 0`, descending (0 = main diagonal, last).
    package var slashOffsets: [Int]

    package init(columnScores: [Double], diagonalScores: [Double], verticals: [Int], slashOffsets: [Int]) {
        self.columnScores = columnScores
        self.diagonalScores = diagonalScores
        self.verticals = verticals
        self.slashOffsets = slashOffsets
    }

    /// The sequence length N the scores were computed for.
    package var length: Int { columnScores.count }
}

extension PatternReference {
    /// Section 4 in float64: softmax rows of the last `L = min(64, N)` queries of query head
    /// `head` (flattened batch * Hq; its KV head comes from `ReferenceAttention.kvHead`), logits
    /// scaled by `reference.problem.scale` and causally masked, summed per key column and per
    /// diagonal, forced entries set to +inf, then `topK` with the clamped budgets.
    ///
    /// Upstream computes logits in the input dtype and the softmax in float32; here everything
    /// is float64 from the (already rounded) inputs, so a GPU estimate can differ where two
    /// scores are within float32 rounding of each other. `N = 1` (where upstream's diagonal slice
    /// is empty and `topk` fails) is defined here as the one column and the one offset 0.
    package static func verticalSlashEstimate(reference: ReferenceAttention, head: Int, vertical: Int, slash: Int)
        -> VerticalSlashSelection
    {
        requirePrefill(reference, head: head, function: "verticalSlashEstimate")
        let n = reference.problem.keyLength
        let lastQueries = min(estimationQueries, n)
        var columnScores = [Double](repeating: 0, count: n)
        var diagonalScores = [Double](repeating: 0, count: n)
        for query in (n - lastQueries)..<n {
            // Causal: keys after the query have probability 0 (upstream's -inf mask on the last block).
            let probabilities = softmax(reference.logits(head: head, query: query, keys: 0...query))
            for (key, p) in probabilities.enumerated() {
                columnScores[key] += p
                diagonalScores[query - key] += p
            }
        }
        for column in 0..<min(forcedVerticals, n) { columnScores[column] = .infinity }
        for offset in 0..<min(forcedSlashes, n) { diagonalScores[offset] = .infinity }
        let budgets = clampedBudgets(vertical: vertical, slash: slash, length: n)
        // Ties go to the smaller offset, so with S < 100 the nearest forced diagonals (and 0) win.
        return VerticalSlashSelection(columnScores: columnScores, diagonalScores: diagonalScores,
                                      verticals: topK(columnScores, budgets.vertical),
                                      slashOffsets: topK(diagonalScores, budgets.slash).reversed())
    }

    /// Numerically stable float64 softmax of one row of finite logits.
    static func softmax(_ logits: [Double]) -> [Double] {
        guard let peak = logits.max() else { return [] }
        let weights = logits.map { Double.exp($0 - peak) }
        let total = weights.reduce(0, +)
        return weights.map { $0 / total }
    }
}
