import RealModule

extension PatternReference {
    /// XAttention's block scores `Sc` for one query head (docs/PREFILL-METHODS.md, sections
    /// 4.4-4.5), as the **Triton** estimate defines them. Upstream's torch estimate (the one it runs
    /// on devices whose name lacks "100", the H200 among them) computes the same numbers except
    /// when `ceil(N/C)*C - N < stride`, where it hides every earlier chunk (section 4.6, an upstream
    /// bug); this function does not model that.
    ///
    /// With `S = stride`, `R = ceil(N/S)` strided rows and zero vectors past `N`:
    ///
    /// - `A[r, c] = sum_{t < S} q[S r + S-1-t] · k[S c + t]`, the antidiagonal of the `S x S` tile,
    ///   for `c <= r < R` (the diagonal tile `c == r` counts in full, half of it non-causal),
    ///   rounded with `rounding`;
    /// - `P[r, ·]` = softmax over `c <= r` of `A[r, c] / (S sqrt(d) norm)`, `d` the head dim (not
    ///   the problem's `scale`);
    /// - `Sc[m][n]` = the sum of `P[r, c]` over the `B/S` strided rows `r` of query block `m`
    ///   (only `r < R`) and the `B/S` strided columns `c` of key block `n`, rounded with
    ///   `rounding`.
    ///
    /// `rounding` stands for the model's dtype, in which upstream stores `A` and `Sc` (nil: no
    /// rounding, which is what fp32 inputs give up to fp32's own rounding). Everything else is
    /// float64. Returns one row per query block, `m in 0..<ceil(N/B)`, row `m` holding the causal
    /// key blocks `n in 0...m` (upstream's blocks `n > m` score 0). Each row sums to its number of
    /// strided rows, `B/S` except possibly in the last block.
    package static func xAttentionBlockScores(reference: ReferenceAttention, head: Int, stride: Int, blockSize: Int,
                                              norm: Double = 1, rounding: ((Double) -> Double)? = nil) -> [[Double]] {
        requirePrefill(reference, head: head, function: "xAttentionBlockScores")
        precondition(stride >= 1 && blockSize >= stride && blockSize % stride == 0,
                     "xAttentionBlockScores: blockSize \(blockSize) must be a positive multiple of stride \(stride)")
        precondition(norm.isFinite && norm > 0, "xAttentionBlockScores: norm must be positive and finite, got \(norm)")
        let problem = reference.problem
        let n = problem.keyLength, d = problem.headDim
        let qBase = head * n * d
        let kBase = reference.kvHead(of: head) * n * d
        let round = rounding ?? { $0 }
        let stridedRows = (n + stride - 1) / stride
        let rowsPerBlock = blockSize / stride
        let logitScale = 1 / (Double(stride) * Double(d).squareRoot() * norm)

        /// The antidiagonal sum of strided row `r` and strided column `c`, positions past `N` being
        /// zero vectors that are multiplied like the device's zero-padded GEMM does: a zero times
        /// a non-finite value of the same strided row or column is NaN, as there.
        func antidiagonal(_ r: Int, _ c: Int) -> Double {
            var sum = 0.0
            for t in 0..<stride {
                let i = stride * r + (stride - 1 - t), j = stride * c + t
                guard i < n || j < n else { continue }  // both zero vectors: exactly 0
                for x in 0..<d {
                    sum += (i < n ? reference.q[qBase + i * d + x] : 0) * (j < n ? reference.k[kBase + j * d + x] : 0)
                }
            }
            return sum
        }

        var scores = (0..<((n + blockSize - 1) / blockSize)).map { [Double](repeating: 0, count: $0 + 1) }
        for r in 0..<stridedRows {
            let logits = (0...r).map { c in round(antidiagonal(r, c)) * logitScale }
            let top = logits.max()!
            let weights = logits.map { Double.exp($0 - top) }
            let total = weights.reduce(0, +)
            let m = r / rowsPerBlock
            for c in 0...r { scores[m][c / rowsPerBlock] += weights[c] / total }
        }
        return scores.map { $0.map(round) }
    }

    /// XAttention's block selection from block scores (docs/PREFILL-METHODS.md, section 4.7:
    /// `find_blocks_chunked` in "prefill" mode, causal, then the lower-triangle cut of
    /// `xattn_estimate`), in float64. `scores` is `xAttentionBlockScores`' shape: row `m` (one per
    /// query block, `ceil(length / blockSize)` of them) holds the non-negative scores of key
    /// blocks `0...m`. Returns per query block the selected key blocks, ascending.
    ///
    /// Per row `m`, with `T` the row's total and `R = threshold * T`:
    ///
    /// - the forced set `F` is `{0, m}` from the second chunk on (`m >= chunkSize / blockSize`) and
    ///   only `{m}` in the first chunk, where upstream's identity write overwrites column 0;
    /// - the other blocks of the padded row (`nb = ceil(length / chunkSize) * chunkSize /
    ///   blockSize` in all, the non-causal and padding ones scoring 0) are sorted by score
    ///   descending, ties to the smaller block index (see `topK`);
    /// - upstream pairs the index list `[F..., others...]` position by position with the running
    ///   sums of `[0, mass(F), others' scores...]`, and keeps position `p` iff the running sum
    ///   before it is strictly below `R`. With `|F| = 2` that is "the forced blocks, then the
    ///   sorted others until the mass reaches `R`, the crossing block included"; with `|F| = 1`
    ///   the sum lags one block behind (the first other is free): about one block more
    ///   (an upstream bug, reproduced);
    /// - the forced blocks are selected in any case (the mask starts as `F`), and a failing
    ///   position writes block 0, so block 0 is always selected;
    /// - blocks `n > m` are removed (non-causal; they can only be picked with score 0).
    ///
    /// A NaN score (an estimate row that read a non-finite value) makes the row's total and `R`
    /// NaN; the test is evaluated as "not yet reached `R`", which a NaN passes, so such a row keeps
    /// every causal block (the same comparison as xattn_counts and mass_threshold.h).
    ///
    /// The running sums are added in upstream's order (sequentially, as its float64 `cumsum`); `T`
    /// is summed from block 0 up (upstream's `sum` may associate differently, which matters only
    /// when a running sum lands within a few ulps of `R`).
    package static func xAttentionSelection(scores: [[Double]], threshold: Double, blockSize: Int, length: Int,
                                            chunkSize: Int = 2048) -> [[Int]] {
        precondition(length >= 1 && blockSize >= 1, "xAttentionSelection: length \(length), blockSize \(blockSize)")
        precondition(chunkSize >= blockSize && chunkSize % blockSize == 0,
                     "xAttentionSelection: chunkSize \(chunkSize) must be a positive multiple of blockSize \(blockSize)")
        let rows = (length + blockSize - 1) / blockSize
        precondition(scores.count == rows, "xAttentionSelection: \(scores.count) score rows for \(rows) query blocks")
        let blocksPerChunk = chunkSize / blockSize
        let paddedBlocks = (length + chunkSize - 1) / chunkSize * blocksPerChunk
        return scores.enumerated().map { m, causalScores in
            precondition(causalScores.count == m + 1, "xAttentionSelection: row \(m) has \(causalScores.count) scores, expected \(m + 1)")
            precondition(causalScores.allSatisfy { $0 >= 0 || $0.isNaN }, "xAttentionSelection: row \(m) has a negative score")
            let row = causalScores + [Double](repeating: 0, count: paddedBlocks - m - 1)
            let required = row.reduce(0, +) * threshold
            let forced = m < blocksPerChunk ? [m] : [0, m]
            let forcedMass = forced.reduce(0) { $0 + row[$1] }
            let others = row.indices.filter { !forced.contains($0) }.sorted { ranksAbove(row[$0], $0, row[$1], $1) }
            let order = forced + others
            let values = [0, forcedMass] + others.map { row[$0] }
            var selected = Set(forced)  // upstream's mask starts as F, whatever the tests below say
            var before = 0.0
            for (position, block) in order.enumerated() {
                // "before < required" written as "not yet reached" (the same for numbers): a NaN
                // score makes `required` NaN, and the row keeps every block (xattn_counts' rule)
                selected.insert(!(before >= required) ? block : 0)
                before += values[position]
            }
            return selected.filter { $0 <= m }.sorted()
        }
    }

    /// `xAttentionBlockScores` then `xAttentionSelection`: one query head's XAttention block
    /// selection (docs/PREFILL-METHODS.md, section 4; upstream's defaults stride 8, block 128,
    /// chunk 2048, norm 1; its default threshold is 0.9).
    package static func xAttentionSelection(reference: ReferenceAttention, head: Int, threshold: Double, stride: Int = 8,
                                            blockSize: Int = 128, chunkSize: Int = 2048, norm: Double = 1,
                                            rounding: ((Double) -> Double)? = nil) -> [[Int]] {
        let scores = xAttentionBlockScores(reference: reference, head: head, stride: stride, blockSize: blockSize, norm: norm,
                                           rounding: rounding)
        return xAttentionSelection(scores: scores, threshold: threshold, blockSize: blockSize,
                                   length: reference.problem.keyLength, chunkSize: chunkSize)
    }

    /// Keys query `query` attends under a block selection of `blockSize`-key blocks (XAttention's
    /// and FlexPrefill's 128): the selected key blocks of its query block `query / blockSize`,
    /// masked element-wise causally (`j <= query`). Ascending, each key once. The 64-block
    /// `coveredKeys(blockSelection:query:length:)` is this with `blockSize = 64`.
    package static func coveredKeys(blockSelection: [[Int]], blockSize: Int, query: Int, length: Int) -> [Int] {
        precondition(blockSize >= 1, "blockSize must be >= 1, got \(blockSize)")
        let m = query / blockSize
        precondition(query >= 0 && query < length && m < blockSelection.count,
                     "query \(query) outside the selection's \(blockSelection.count) row blocks or length \(length)")
        var covered = CausalKeyMask(query: query)
        for block in blockSelection[m] { covered.insert((block * blockSize)..<(block * blockSize + blockSize)) }
        return covered.keys
    }
}
