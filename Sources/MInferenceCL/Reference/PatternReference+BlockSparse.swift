extension PatternReference {
    /// 64-row blocks after upstream's padding, `Np / 64` with `Np = N + 64 - (N mod 64)`: always
    /// `floor(N / 64) + 1`, because a length that is already a multiple of 64 still gets one
    /// all-zero block. It only enters through the budget clamp `K = min(blocks, Np / 64)`.
    package static func paddedBlockCount(length: Int) -> Int { length / blockSize + 1 }

    /// Section 7 steps 1-3 in float64: pooled block scores `Ps[m][n] = qpool[m] · kpool[n]` (no
    /// `1/sqrt(d)`; it would not change the ranking) for every row block that holds a query,
    /// `m in 0..<ceil(N/64)`, and its causal key blocks `n in 0...m` (the others are -inf
    /// upstream and never selected). Pooling divides by 64 even in the last, partial block,
    /// because upstream takes the mean over zero-padded rows: a short last key block scores lower
    /// than its real tokens' mean would.
    package static func blockScores(reference: ReferenceAttention, head: Int) -> [[Double]] {
        requirePrefill(reference, head: head, function: "blockScores")
        let problem = reference.problem
        let n = problem.keyLength
        let queryPool = meanPooledBlocks(reference.q, base: head * n * problem.headDim, length: n, dim: problem.headDim)
        let keyPool = meanPooledBlocks(reference.k, base: reference.kvHead(of: head) * n * problem.headDim, length: n,
                                       dim: problem.headDim)
        return queryPool.indices.map { m in
            (0...m).map { kb in zip(queryPool[m], keyPool[kb]).reduce(0) { $0 + $1.0 * $1.1 } }
        }
    }

    /// Section 7 steps 4-5: per row block (one entry per block holding a query, `ceil(N/64)`), the
    /// key blocks the kernel visits, ascending. With `K = min(blocks, paddedBlockCount)` the
    /// kernel reads the first `min(m + 1, K)` of the `K` sorted top-k entries: for `m + 1 <= K`
    /// that is every causal block `0...m` (finite scores beat the -inf ones, whatever their tie
    /// order), otherwise the `K` best causal blocks, ties to the smaller block number. No block is
    /// forced (neither the diagonal nor the first).
    package static func blockSparseSelection(reference: ReferenceAttention, head: Int, blocks: Int) -> [[Int]] {
        let budget = max(0, min(blocks, paddedBlockCount(length: reference.problem.keyLength)))
        return blockScores(reference: reference, head: head).enumerated().map { m, scores in
            m + 1 <= budget ? Array(0...m) : topK(scores, budget)
        }
    }

    /// Keys query `query` attends under a block selection: the selected 64-key blocks of its row
    /// block, masked element-wise causally (`j <= query`), which also drops the padding keys
    /// `>= length` (so `length` only bounds `query`). Ascending, each key once.
    package static func coveredKeys(blockSelection: [[Int]], query: Int, length: Int) -> [Int] {
        coveredKeys(blockSelection: blockSelection, blockSize: blockSize, query: query, length: length)
    }

    /// Means over 64-row blocks of one head's `[length, dim]` rows stored from `base`, dividing by
    /// 64 also for the last, partial block (upstream's zero padding).
    static func meanPooledBlocks(_ values: [Double], base: Int, length: Int, dim: Int) -> [[Double]] {
        let rowBlocks = (length + blockSize - 1) / blockSize
        return (0..<rowBlocks).map { b in
            var sum = [Double](repeating: 0, count: dim)
            for row in (b * blockSize)..<min(b * blockSize + blockSize, length) {
                for c in 0..<dim { sum[c] += values[base + row * dim + c] }
            }
            return sum.map { $0 / Double(blockSize) }
        }
    }
}
