import RealModule

/// FlexPrefill's decision for one query head (docs/PREFILL-METHODS.md, sections 5.2-5.7).
package struct FlexPrefillHeadSelection: Sendable {
    /// Whether the head is query-aware (JS distance `< tau`, section 5.5): its blocks add the
    /// pooled block attention's cover (5.7). False for a vertical-slash head and for the dense
    /// short-sequence case.
    package var queryAware: Bool
    /// The square-root Jensen-Shannon distance `D` between the pooled estimate and the last
    /// queries' block attention (5.5); NaN when a probability is exactly 0 (upstream's
    /// `0 * ln 0`), and NaN in the dense short-sequence case, where nothing is estimated.
    package var distance: Double
    /// Vertical (key-column) blocks `nV` after the budget clamps, `minB` for a query-aware head;
    /// the block count for the dense case.
    package var verticalBlocks: Int
    /// Slash (block-diagonal) blocks `nS`, likewise.
    package var slashBlocks: Int
    /// Per query block (`ceil(N / blockSize)` rows), the selected causal key blocks, ascending.
    package var blocks: [[Int]]
}

extension PatternReference {
    /// FlexPrefill's block selection for one query head (docs/PREFILL-METHODS.md, sections
    /// 5.2-5.7; upstream's `flex_prefill_attention` / `get_active_blocks`), in float64.
    ///
    /// - Short sequences (5.2): `N <= max(2B, ceil(minBudget / B) * B)` runs dense; every causal
    ///   block is returned, `queryAware` false, `distance` NaN, both counts `ceil(N / B)`.
    /// - Otherwise the last `B` queries' attention gives the token-level vertical and slash
    ///   distributions (5.3); `cover` (`flexPrefillCover`) turns `gamma` into token counts and
    ///   `flexPrefillBudget` into block counts (5.4); the JS distance between the pooled estimate
    ///   and the block verticals decides the head kind against `tau` (5.5); the `nV` best key
    ///   blocks and the `nS` best block diagonals make the vertical-slash part (5.6), to which a
    ///   query-aware head adds the `gamma * nb` cover of its pooled block attention (5.7).
    ///
    /// `minBudget` and `maxBudget` are in tokens (nil: upstream's 1 and 2³¹ − 1), converted to
    /// blocks with `ceil(x / B)`. `blockSize` is upstream's fixed 128 (its `block_size` option
    /// never reaches this code, section 5.1); it also replaces the literal 128 that upstream divides
    /// the token budgets by (5.4), which equals the block size there, and the 128 last queries of
    /// the estimate (5.3). This library's FlexPrefill uses 128 by default as well.
    ///
    /// Upstream runs in bf16: it rounds the scaled last queries, the logits, the pooled keys and
    /// queries, and the pooled logits to bf16 (5.3, 5.5, 5.7) and sums in fp32. The reference does
    /// not round and sums in float64, so its sets can differ from upstream's only where a
    /// cumulative sum lands within rounding distance of `gamma` (or `gamma * nb`), or the distance
    /// within rounding distance of `tau` (5.9). Ties rank the smaller index first (`topK`).
    package static func flexPrefillSelection(reference: ReferenceAttention, head: Int, gamma: Double, tau: Double,
                                             minBudget: Int?, maxBudget: Int?, blockSize: Int = 128) -> FlexPrefillHeadSelection {
        requirePrefill(reference, head: head, function: "flexPrefillSelection")
        precondition(blockSize >= 1, "flexPrefillSelection: blockSize must be >= 1, got \(blockSize)")
        precondition((minBudget ?? 1) >= 1 && (maxBudget ?? 1) >= 1,
                     "flexPrefillSelection: budgets must be at least 1 token (0 makes upstream's result depend on the other heads)")
        let problem = reference.problem
        let n = problem.keyLength, d = problem.headDim
        let b = blockSize
        let nb = (n + b - 1) / b
        let minBlocks = ((minBudget ?? 1) + b - 1) / b
        let maxBlocks = min(((maxBudget ?? Int(Int32.max)) + b - 1) / b, nb)

        if n <= max(2 * b, minBlocks * b) {
            return FlexPrefillHeadSelection(queryAware: false, distance: .nan, verticalBlocks: nb, slashBlocks: nb,
                                            blocks: (0..<nb).map { Array(0...$0) })
        }

        let qBase = head * n * d
        let kBase = reference.kvHead(of: head) * n * d
        let invSqrtD = 1 / Double(d).squareRoot()
        func query(_ i: Int) -> [Double] { Array(reference.q[(qBase + i * d)..<(qBase + i * d + d)]) }
        func key(_ j: Int) -> [Double] { Array(reference.k[(kBase + j * d)..<(kBase + j * d + d)]) }
        func dot(_ x: [Double], _ y: [Double]) -> Double {
            var sum = 0.0
            for c in 0..<x.count { sum += x[c] * y[c] }
            return sum
        }
        /// `x · k[j]`, read in place (the hot loop of the estimate).
        func dotKey(_ x: [Double], _ j: Int) -> Double {
            var sum = 0.0
            let base = kBase + j * d
            for c in 0..<d { sum += x[c] * reference.k[base + c] }
            return sum
        }

        // 5.3: attention of the last b queries (scaled by 1/sqrt(d) first), causal, softmax over j.
        let firstLast = n - b
        let lastQueries = (firstLast..<n).map { i in query(i).map { $0 * invSqrtD } }
        var vertical = [Double](repeating: 0, count: n)
        var slash = [Double](repeating: 0, count: n)
        for (r, lq) in lastQueries.enumerated() {
            let i = firstLast + r
            let logits = (0...i).map { dotKey(lq, $0) }
            let top = logits.max()!
            let weights = logits.map { Double.exp($0 - top) }
            let total = weights.reduce(0, +)
            for j in 0...i {
                let p = weights[j] / total
                vertical[j] += p
                slash[n - 1 - (i - j)] += p  // t = N - 1 - offset
            }
        }
        vertical = vertical.map { $0 / Double(b) }
        slash = slash.map { $0 / Double(b) }

        // 5.4: budgets.
        var nV = flexPrefillBudget(coverTokens: flexPrefillCover(vertical, gamma: gamma), blockSize: b,
                                   minBlocks: minBlocks, maxBlocks: maxBlocks)
        var nS = flexPrefillBudget(coverTokens: flexPrefillCover(slash, gamma: gamma), blockSize: b,
                                   minBlocks: minBlocks, maxBlocks: maxBlocks)

        // 5.5: block distributions, pooled keys, JS test.
        var verticalBlocks = (0..<nb).map { blk in vertical[(blk * b)..<min(blk * b + b, n)].reduce(0, +) }
        var slashBlocks = (0..<nb).map { s in slash[(s * b)..<min(s * b + b, n)].reduce(0, +) }
        let pooledKeys = (0..<nb).map { blk in meanRows((blk * b..<min(blk * b + b, n)).map(key)[...], dim: d) }
        let meanLastQuery = meanRows(lastQueries[...], dim: d)
        let pooled = softmax(pooledKeys.map { dot(meanLastQuery, $0) })
        let distance = jensenShannonDistance(pooled, verticalBlocks)
        let queryAware = distance < tau
        if queryAware { (nV, nS) = (minBlocks, minBlocks) }

        // 5.6: forced first key block and main block diagonal, then top-k of each.
        verticalBlocks[0] = .infinity
        slashBlocks[nb - 1] = .infinity
        let verticals = topK(verticalBlocks, nV)
        let distances = topK(slashBlocks, nS).map { nb - 1 - $0 }
        var rows = flexPrefillVerticalSlashBlocks(verticals: verticals, distances: distances, blocks: nb).map(Set.init)

        // 5.7: pooled block attention of a query-aware head.
        if queryAware {
            let pooledQueries = (0..<nb).map { blk in
                meanRows((blk * b..<min(blk * b + b, n)).map(query)[...], dim: d).map { $0 * invSqrtD }
            }
            let probabilities = pooledQueries.enumerated().map { m, pq in softmax((0...m).map { dot(pq, pooledKeys[$0]) }) }
            for (m, extra) in flexPrefillCoverBlocks(probabilities: probabilities, gamma: gamma).enumerated() {
                rows[m].formUnion(extra)
            }
        }
        return FlexPrefillHeadSelection(queryAware: queryAware, distance: distance, verticalBlocks: nV, slashBlocks: nS,
                                        blocks: rows.map { $0.sorted() })
    }

    /// `cover(x)` of docs/PREFILL-METHODS.md section 5.4 (upstream's `score_cover_topk`):
    /// `1 + #{k >= 1 : (sum of the k largest entries) <= gamma}`, the entries needed for the sorted
    /// prefix to exceed `gamma` strictly (one more than the longest prefix that stays within it).
    /// The prefix sums are added largest first, as upstream's `cumsum` of the sorted values.
    ///
    /// NaN entries rank first (`topK`'s order) and "within gamma" is "not beyond it", which a NaN
    /// prefix is: with a NaN entry every prefix counts and the cover is `count + 1` (the budget
    /// then reaches its maximum), as flex_head_choice's count (mass_threshold.h).
    package static func flexPrefillCover(_ values: [Double], gamma: Double) -> Int {
        var prefix = 0.0
        var within = 0
        for index in values.indices.sorted(by: { ranksAbove(values[$0], $0, values[$1], $1) }) {
            prefix += values[index]
            if !(prefix > gamma) { within += 1 }
        }
        return within + 1
    }

    /// A head's block budget from a cover in tokens (section 5.4):
    /// `min(max(floor(coverTokens / blockSize) + 1, minBlocks), maxBlocks)`, raised to the minimum
    /// first and then lowered to the maximum, so `maxBlocks` wins when `minBlocks > maxBlocks`.
    /// Upstream divides by a literal 128, which is its block size.
    package static func flexPrefillBudget(coverTokens: Int, blockSize: Int, minBlocks: Int, maxBlocks: Int) -> Int {
        min(max(coverTokens / blockSize + 1, minBlocks), maxBlocks)
    }

    /// The square root of the Jensen-Shannon divergence in nats (section 5.5):
    /// `sqrt(½ Σ p ln(p/M) + ½ Σ q ln(q/M))`, `M = (p + q) / 2`. As upstream, a zero entry makes
    /// `0 · ln 0 = NaN`, and so the result NaN (which no `D < tau` test passes).
    package static func jensenShannonDistance(_ p: [Double], _ q: [Double]) -> Double {
        precondition(p.count == q.count, "jensenShannonDistance: \(p.count) against \(q.count) entries")
        var left = 0.0, right = 0.0
        for (x, y) in zip(p, q) {
            let mid = (x + y) / 2
            left += x * Double.log(x / mid)
            right += y * Double.log(y / mid)
        }
        return (0.5 * left + 0.5 * right).squareRoot()
    }

    /// The vertical-slash blocks of section 5.6 step 4: vertical `v` covers `(r, v)` for every
    /// `r >= v`, block-diagonal distance `δ` covers `(c + δ, c)` for every `c + δ < blocks`.
    /// Returns per query block the covered key blocks, ascending.
    package static func flexPrefillVerticalSlashBlocks(verticals: [Int], distances: [Int], blocks: Int) -> [[Int]] {
        (0..<blocks).map { r in
            var row = Set(verticals.filter { $0 <= r })
            for delta in distances where delta >= 0 && delta <= r { row.insert(r - delta) }
            return row.sorted()
        }
    }

    /// Section 5.7 step 3 (upstream's `score_cover_idx` on the flattened block attention): the
    /// causal probabilities `probabilities[m][n]` (`n <= m`, each row summing to 1) of all rows
    /// are sorted together, largest first, ties to the smaller flattened index `m * nb + n`, and a
    /// block is kept iff the running sum **including** it is `<= gamma * nb` (`nb` = the number of
    /// rows). Returns per row the kept key blocks, ascending. Upstream replaces the others by
    /// block `(0, 0)`, which every head has anyway (5.6). Upstream's flattened matrix also holds
    /// the non-causal blocks with probability 0, after every causal one; they can only be reached
    /// for `gamma >= 1`, and the kernel's causal mask leaves them without keys, so they are left
    /// out here.
    package static func flexPrefillCoverBlocks(probabilities: [[Double]], gamma: Double) -> [[Int]] {
        let nb = probabilities.count
        var entries: [(flat: Int, value: Double)] = []
        for (m, row) in probabilities.enumerated() {
            precondition(row.count == m + 1, "flexPrefillCoverBlocks: row \(m) has \(row.count) entries, expected \(m + 1)")
            for (n, p) in row.enumerated() { entries.append((m * nb + n, p)) }
        }
        entries.sort { ranksAbove($0.value, $0.flat, $1.value, $1.flat) }
        var kept = [[Int]](repeating: [], count: nb)
        var running = 0.0
        for entry in entries {
            running += entry.value
            // "not beyond": a NaN probability (first in the order) keeps every block, as the kernel
            if !(running > gamma * Double(nb)) { kept[entry.flat / nb].append(entry.flat % nb) }
        }
        return kept.map { $0.sorted() }
    }

    /// Mean of rows (the real rows only, as upstream's pooling of the last, partial block).
    static func meanRows(_ rows: ArraySlice<[Double]>, dim: Int) -> [Double] {
        var sum = [Double](repeating: 0, count: dim)
        for row in rows { for c in 0..<dim { sum[c] += row[c] } }
        return sum.map { $0 / Double(rows.count) }
    }
}
