/// Spends a layer's kernel budget across its heads: one candidate per head so that the summed
/// cost stays within the budget and the summed recall is highest (a multiple-choice knapsack,
/// solved exactly by dynamic programming over the cost in tiles; above `maxUnits` budget units
/// costs are counted in coarser units, rounded up, so the budget still holds).
///
/// Deterministic: candidates are visited in the order given, and a later one replaces an earlier
/// one only with strictly more recall.
package enum BudgetAllocation {
    package static let maxUnits = 20_000

    /// The index of the chosen candidate per head, or nil when no combination fits `budget`.
    package static func choose(costs: [[Int]], recalls: [[Double]], budget: Int) -> [Int]? {
        precondition(costs.count == recalls.count && zip(costs, recalls).allSatisfy { $0.count == $1.count })
        guard budget >= 0 else { return nil }
        let unit = max(1, (budget + maxUnits - 1) / maxUnits)
        let capacity = budget / unit
        let unitCosts = costs.map { $0.map { ($0 + unit - 1) / unit } }
        // best[b]: highest recall of the heads so far within b units (-inf: impossible).
        var best = [Double](repeating: 0, count: capacity + 1)
        var choice: [[Int32]] = []
        for h in costs.indices {
            var next = [Double](repeating: -.infinity, count: capacity + 1)
            var picked = [Int32](repeating: -1, count: capacity + 1)
            for (c, (cost, recall)) in zip(unitCosts[h], recalls[h]).enumerated() where cost <= capacity {
                for b in cost...capacity where best[b - cost] > -.infinity {
                    let value = best[b - cost] + recall
                    if value > next[b] {
                        next[b] = value
                        picked[b] = Int32(c)
                    }
                }
            }
            best = next
            choice.append(picked)
        }
        guard var b = best.indices.max(by: { best[$0] < best[$1] || (best[$0] == best[$1] && $0 > $1) }), best[b] > -.infinity else {
            return nil
        }
        var chosen = [Int](repeating: 0, count: costs.count)
        for h in costs.indices.reversed() {
            let c = Int(choice[h][b])
            chosen[h] = c
            b -= unitCosts[h][c]
        }
        return chosen
    }
}
