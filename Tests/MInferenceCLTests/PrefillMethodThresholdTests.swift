@testable import MInferenceCL
import Testing

/// The device's threshold steps on hand-made scores, against the float64 references: XAttention's
/// count per query block (xattention_index.cl `xattn_counts`, then topk.cl, as
/// XAttentionPipeline.select runs them) against `PatternReference.xAttentionSelection`
/// (docs/PREFILL-METHODS.md 4.7), and FlexPrefill's query-aware count (flexprefill_index.cl
/// `flex_pooled_counts`, then topk.cl) against `PatternReference.flexPrefillCoverBlocks` (5.7).
///
/// The scores are exact binary fractions, so every sum is exact in float32 and float64 alike: a
/// running sum that lands exactly on the threshold is decided by the comparison alone (strict
/// `<` for XAttention, `<=` for FlexPrefill), and ties are decided by the index rule alone.
@Suite("Prefill method thresholds on the device")
struct PrefillMethodThresholdTests {
    // MARK: Device steps

    /// XAttention's selection of hand-made block scores on the device, one list per query block.
    /// `rows` is the reference's shape (row m holds key blocks 0...m of the whole prompt, the
    /// prompt being `length` tokens of `blockSize`-blocks); the device gets query blocks
    /// `base...` (a chunk from block `base`; 0 for the whole prompt), with `filler` in the
    /// non-causal entries, which no step may read.
    static func deviceXAttention(rows: [[Double]], threshold: Double, blockSize: Int = 128, length: Int, chunkSize: Int,
                                 base: Int = 0, filler: Float = 1e6) throws -> [[Int]] {
        let context = try TestDevice.engine().context
        let nb = rows.count, qb = nb - base
        var flat = [Float](repeating: filler, count: qb * nb)
        for b in 0..<qb {
            for (n, value) in rows[base + b].enumerated() { flat[b * nb + n] = Float(value) }
        }
        // The f32, stride-8, 128-block, d-64 program of PrefillMethodTests (built once).
        let program = try context.program(KernelSource.named("xattention_index.cl"), options: BuildOptions(defines: [
            "INPUT_DTYPE": DType.f32.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "64", "XATTN_STRIDE": "8",
            "XATTN_BLOCK": "\(blockSize)"]))
        let scores = try DeviceBuffer(context: context, copying: flat, label: "hand-made block scores")
        let ks = try DeviceBuffer(context: context, byteCount: qb * 4, label: "counts")
        let padded = (length + chunkSize - 1) / chunkSize * chunkSize / blockSize
        // As XAttentionPipeline.select: the threshold in three fp32 parts (exactly the float64 value).
        try context.launch(program, "xattn_counts", global: [256 * qb], local: [256],
                           [.buffer(scores), .int(Int32(nb)), .int(Int32(qb)), .int(Int32(base)), .int(Int32(padded)),
                            .int(Int32(chunkSize / blockSize))] + KernelArgument.exactDouble(threshold) + [.buffer(ks)])
        let (selection, _) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: scores, stride: nb, count: qb, length: nb, causal: true, causalFirst: base, rowsPerGroup: qb, kOfGroup: [],
            kBuffer: ks, maxK: nb, rowsPerK: 1))
        try context.finish()
        let indices = try selection.indices.read(as: Int32.self, count: qb * selection.stride)
        let counts = try selection.counts.read(as: Int32.self, count: qb)
        return (0..<qb).map { b in
            indices[(b * selection.stride)..<(b * selection.stride + Int(counts[b]))].map(Int.init)
        }
    }

    /// FlexPrefill's query-aware blocks of hand-made pooled probabilities on the device (row m
    /// holds key blocks 0...m; `queryAware` false: the head takes none), one list per row.
    static func deviceFlexPrefillCover(rows: [[Double]], gamma: Double, queryAware: Bool = true) throws -> [[Int]] {
        let context = try TestDevice.engine().context
        let qb = rows.count, nb = rows.count
        var flat = [Float](repeating: 0, count: qb * nb)  // flex_pooled_scores writes 0 past the row
        for (m, row) in rows.enumerated() {
            for (n, value) in row.enumerated() { flat[m * nb + n] = Float(value) }
        }
        // The f32, 128-block, d-64 program of PrefillMethodTests (built once).
        let program = try context.program(KernelSource.named("flexprefill_index.cl"), options: BuildOptions(defines: [
            "INPUT_DTYPE": DType.f32.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "64", "FLEX_BLOCK": "128"]))
        let pooled = try DeviceBuffer(context: context, copying: flat, label: "hand-made pooled attention")
        let aware = try DeviceBuffer(context: context, copying: [Int32(queryAware ? 1 : 0)], label: "query-aware")
        let ks = try DeviceBuffer(context: context, byteCount: 4, label: "count")
        try context.launch(program, "flex_pooled_counts", global: [256], local: [256],
                           [.buffer(pooled), .int(Int32(qb)), .int(Int32(nb)), .buffer(aware)] + KernelArgument.exactDouble(gamma)
                            + [.buffer(ks)])
        let (selection, _) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: pooled, stride: qb * nb, count: 1, length: qb * nb, causal: false, rowsPerGroup: 1, kOfGroup: [],
            kBuffer: ks, maxK: qb * nb))
        try context.finish()
        let count = Int(try selection.counts.read(as: Int32.self, count: 1)[0])
        let flatIndices = try selection.indices.read(as: Int32.self, count: selection.stride).prefix(count).map(Int.init)
        var lists = [[Int]](repeating: [], count: qb)
        for index in flatIndices { lists[index / nb].append(index % nb) }
        return lists.map { $0.sorted() }
    }

    /// FlexPrefill's per-head choice on the device (flexprefill_index.cl `flex_head_choice`) for
    /// one head with a hand-made estimate: `column` and `diagonal` are the sums over `rows` last
    /// queries (vert = column / rows, slash = the diagonal sums / rows), the pooled queries and
    /// keys are zero (so pq is uniform over the key blocks). Returns the vertical and slash block
    /// budgets, the query-aware flag and the distance.
    static func deviceFlexPrefillChoice(column: [Float], diagonal: [Float], rows: Int, gamma: Double, tau: Double,
                                        minBlocks: Int = 1, maxBlocks: Int = Int(Int32.max))
        throws -> (vertical: Int, slash: Int, queryAware: Bool, distance: Float) {
        let context = try TestDevice.engine().context
        let n = column.count, nb = (n + 127) / 128
        // The f32, 128-block, d-64 program of PrefillMethodTests (built once).
        let program = try context.program(KernelSource.named("flexprefill_index.cl"), options: BuildOptions(defines: [
            "INPUT_DTYPE": DType.f32.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "64", "FLEX_BLOCK": "128"]))
        let estimate = try DeviceBuffer(context: context, copying: column + diagonal, label: "hand-made estimate")
        let lastMean = try DeviceBuffer(context: context, copying: [Float](repeating: 0, count: 64), label: "last-query mean")
        let pooledK = try DeviceBuffer(context: context, copying: [Float](repeating: 0, count: nb * 64), label: "pooled keys")
        let kvOfSlot = try DeviceBuffer(context: context, copying: [Int32(0)], label: "kv of slot")
        let blockScores = try DeviceBuffer(context: context, byteCount: 2 * nb * 4, label: "block scores")
        let logits = try DeviceBuffer(context: context, byteCount: nb * 4, label: "logits")
        let ks = try DeviceBuffer(context: context, byteCount: 2 * 4, label: "budgets")
        let aware = try DeviceBuffer(context: context, byteCount: 4, label: "query-aware")
        let distance = try DeviceBuffer(context: context, byteCount: 4, label: "distance")
        // As FlexPrefillPipeline.select: γ and τ in three fp32 parts each (their float64 values).
        try context.launch(program, "flex_head_choice", global: [256], local: [256],
                           [.buffer(estimate), .int(Int32(n)), .int(Int32(rows)), .buffer(lastMean), .buffer(pooledK), .buffer(kvOfSlot),
                            .int(Int32(nb)), .buffer(blockScores), .buffer(logits)] + KernelArgument.exactDouble(gamma)
                            + KernelArgument.exactDouble(tau) + [.int(Int32(minBlocks)), .int(Int32(min(maxBlocks, Int(Int32.max)))), .buffer(ks), .buffer(aware), .buffer(distance)])
        try context.finish()
        let budgets = try ks.read(as: Int32.self, count: 2)
        return (Int(budgets[0]), Int(budgets[1]), try aware.read(as: Int32.self, count: 1)[0] != 0,
                try distance.read(as: Float.self, count: 1)[0])
    }

    // MARK: Hand-made rows

    /// Rows of exact binary fractions from a few values (many ties, frequent exact hits of a
    /// dyadic threshold), with all-zero rows, diagonal-only and block-0-only rows mixed in.
    static func dyadicRows(blocks: Int, seed: UInt64) -> [[Double]] {
        var random = SeededRandom(seed: seed)
        let values: [Double] = [0, 0.25, 0.5, 1, 1, 2, 4]
        return (0..<blocks).map { m in
            switch Int(random.next() % 9) {
            case 0: return [Double](repeating: 0, count: m + 1)
            case 1: return (0...m).map { $0 == m ? 3 : 0 }
            case 2: return (0...m).map { $0 == 0 ? 2 : 0 }
            default: return (0...m).map { _ in values[Int(random.next() % UInt64(values.count))] }
            }
        }
    }

    /// `flexPrefillCoverBlocks`' input: row m of m + 1 binary fractions summing to 1 (halves of
    /// halves), so the rows together sum to the row count exactly.
    static func dyadicProbabilities(rows: Int, seed: UInt64) -> [[Double]] {
        var random = SeededRandom(seed: seed)
        return (0..<rows).map { m in
            var parts: [Double] = [1]
            while parts.count < m + 1 {
                let i = Int(random.next() % UInt64(parts.count))
                guard parts[i] > 1.0 / 1024 else { continue }
                parts[i] /= 2
                parts.append(parts[i])
            }
            // shuffle the positions deterministically
            for i in stride(from: parts.count - 1, to: 0, by: -1) { parts.swapAt(i, Int(random.next() % UInt64(i + 1))) }
            return parts
        }
    }

    // MARK: XAttention

    /// 21 query blocks of a 2683-token prompt, upstream's first chunk being 8 blocks (1024 queries):
    /// rows of both selection rules, a partial last block, and 3 padding blocks (24 in all).
    @Test("XAttention counts on the device equal the reference on dyadic rows, exactly representable thresholds",
          arguments: [0.25, 0.5, 0.75, 1.0])
    func xAttentionDyadicRows(threshold: Double) throws {
        for seed in [UInt64(1), 2, 3] {
            let rows = Self.dyadicRows(blocks: 21, seed: seed * 10 + UInt64(threshold * 4))
            let expected = PatternReference.xAttentionSelection(scores: rows, threshold: threshold, blockSize: 128, length: 2683,
                                                                chunkSize: 1024)
            let got = try Self.deviceXAttention(rows: rows, threshold: threshold, length: 2683, chunkSize: 1024)
            for m in rows.indices {
                #expect(got[m] == expected[m], "seed \(seed) row \(m) \(rows[m]): device \(got[m]), reference \(expected[m])")
            }
            // A chunk of the prompt from block 5 (inside upstream's first chunk) gives the same rows.
            let chunk = try Self.deviceXAttention(rows: rows, threshold: threshold, length: 2683, chunkSize: 1024, base: 5)
            #expect(chunk == Array(got[5...]), "seed \(seed): the chunk from block 5 differs")
        }
    }

    /// Exact hits of R = τ T, ties at the cut, both chunks' rules and all-zero rows, worked out by
    /// hand from docs/PREFILL-METHODS.md 4.7 (τ 0.75; upstream's first chunk: blocks 0..3; 8 blocks).
    @Test("XAttention near the threshold: the block after an exact hit is left out, ties go to the smaller block, the first chunk lags")
    func xAttentionExactHits() throws {
        let rows: [[Double]] = [
            // m 0: {0}
            [5],
            // m 1, first chunk, all zero (R 0): F = {1}, and block 0 from the failing positions: {0, 1}
            [0, 0],
            // m 2, first chunk: T 2, R 1.5, F = {2} (0.5); o_0 = 1 free; o_1 = 0: 0.5 < 1.5; o_2 = 3 (pad): 1.5, not < 1.5
            [0.5, 1, 0.5],
            // m 3, first chunk, F = {3} (0): T 4, R 3; o_0 = 1 free; o_1 = 0 (ties 2): 0 < 3; o_2 = 2: 2 < 3; o_3: 3, not < 3
            [1, 2, 1, 0],
            // m 4, later chunk: F = {0, 4} (2), T 8, R 6; blocks 1, 2 (2 < 6, 4 < 6), block 3 at exactly 6: left out
            [1, 2, 2, 2, 1],
            // m 5, later chunk, all zero: F only
            [0, 0, 0, 0, 0, 0],
            // m 6: F = {0, 6} (1), T 8, R 6; block 2: 1 < 6, block 3: 5 < 6, block 5: 7, not < 6
            [1, 0, 4, 2, 0, 1, 0],
            // m 7: F = {0, 7} (4), T 8, R 6; blocks 1, 2 (4, 5 < 6); block 3 (tied with 4) at exactly 6: left out
            [0, 1, 1, 1, 1, 0, 0, 4],
        ]
        let expected = [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 4], [0, 5], [0, 2, 3, 6], [0, 1, 2, 7]]
        let threshold = 0.75
        let reference = PatternReference.xAttentionSelection(scores: rows, threshold: threshold, blockSize: 128, length: 1000,
                                                             chunkSize: 512)
        #expect(reference == expected, "the hand-worked rows disagree with the reference: \(reference)")
        let got = try Self.deviceXAttention(rows: rows, threshold: threshold, length: 1000, chunkSize: 512)
        #expect(got == expected)
    }

    /// docs/PREFILL-METHODS.md 4.7's worked examples (τ 0.9, T 16, R 14.4; 16-block chunks).
    @Test("XAttention: the spec's worked examples on the device")
    func xAttentionWorkedExamples() throws {
        var rows = (0..<21).map { m in [Double](repeating: 0, count: m + 1) }
        for (n, value) in [0: 3.0, 20: 4, 5: 5, 7: 2, 11: 1, 12: 1] { rows[20][n] = value }
        for (n, value) in [6: 4.0, 0: 6, 2: 3, 4: 2, 1: 1] { rows[6][n] = value }
        let got = try Self.deviceXAttention(rows: rows, threshold: 0.9, length: 21 * 128, chunkSize: 2048)
        #expect(got[20] == [0, 5, 7, 11, 20])
        #expect(got[6] == [0, 1, 2, 4, 6])
        #expect(got == PatternReference.xAttentionSelection(scores: rows, threshold: 0.9, blockSize: 128, length: 21 * 128))
    }

    /// τ = 0.9 is not a float: the kernel gets it in three fp32 parts, and the device's τ T must still
    /// be the float64 τ T of the reference (and of upstream). Here T = 10 and fl(0.9 * 10) = 9
    /// exactly; the running sum reaches 9 exactly before block 3, which the strict rule leaves out.
    @Test("XAttention: τ 0.9 (three fp32 parts on the device), a running sum exactly at fl(τ T)")
    func xAttentionThresholdPointNine() throws {
        // later-chunk row m 5 (chunks of 4 blocks): F = {0, 5} (3); block 1: 3 < 9, block 2: 7 < 9, block 3: 9, not < 9
        var rows = (0..<6).map { m in [Double](repeating: 0, count: m + 1) }
        rows[5] = [1, 4, 2, 1, 0, 2]
        #expect(0.9 * 10.0 == 9.0)
        let expected = PatternReference.xAttentionSelection(scores: rows, threshold: 0.9, blockSize: 128, length: 768, chunkSize: 512)
        #expect(expected[5] == [0, 1, 2, 5])
        let got = try Self.deviceXAttention(rows: rows, threshold: 0.9, length: 768, chunkSize: 512)
        #expect(got[5] == expected[5], "device \(got[5]): block 3 taken at a running sum of exactly fl(0.9 * 10) = 9")
    }

    // MARK: FlexPrefill

    @Test("FlexPrefill query-aware counts on the device equal the reference on dyadic rows, exactly representable gammas",
          arguments: [0.25, 0.5, 0.75, 0.875, 1.0])
    func flexPrefillDyadicRows(gamma: Double) throws {
        for seed in [UInt64(1), 2, 3] {
            let rows = Self.dyadicProbabilities(rows: 12, seed: seed * 10 + UInt64(gamma * 8))
            let expected = PatternReference.flexPrefillCoverBlocks(probabilities: rows, gamma: gamma)
            // γ = 1 reaches the non-causal zeros after every causal block; the kernel's causal mask
            // drops them, and so does the reference.
            let got = try Self.deviceFlexPrefillCover(rows: rows, gamma: gamma).enumerated().map { m, row in row.filter { $0 <= m } }
            #expect(got == expected, "seed \(seed)")
        }
        // A vertical-slash head takes no query-aware block.
        let none = try Self.deviceFlexPrefillCover(rows: Self.dyadicProbabilities(rows: 12, seed: 7), gamma: gamma, queryAware: false)
        #expect(none.allSatisfy { $0.isEmpty })
    }

    /// An exact hit of γ · rows is kept (`<=`), the next block is not; ties go to the smaller
    /// flattened index (row, then column).
    @Test("FlexPrefill near gamma: an exact hit is kept, ties go to the smaller flattened index")
    func flexPrefillExactHits() throws {
        // 4 rows, γ 0.75: limit 3. Sorted: (0,0) 1, then the 0.5s (1,0) (1,1) (2,2) (3,3): running 1.5, 2, 2.5, 3 = limit, kept;
        // then the 0.25s: (2,0) 3.25, left out.
        let rows: [[Double]] = [[1], [0.5, 0.5], [0.25, 0.25, 0.5], [0.125, 0.125, 0.25, 0.5]]
        let expected = [[0], [0, 1], [2], [3]]
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: rows, gamma: 0.75) == expected)
        #expect(try Self.deviceFlexPrefillCover(rows: rows, gamma: 0.75) == expected)
        // γ 11/16: limit 2.75. The four 0.5s tie at the cut: (1,0), (1,1), (2,2) fit (2.5), (3,3) would give 3.
        let tied = [[0], [0, 1], [2], []]
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: rows, gamma: 0.6875) == tied)
        #expect(try Self.deviceFlexPrefillCover(rows: rows, gamma: 0.6875) == tied)
    }

    /// γ = 0.8 is not a float either: fl(0.8 * 10) = 8, and the running sum that reaches 8 exactly
    /// is kept by the `<=` rule.
    @Test("FlexPrefill: γ 0.8 (three fp32 parts on the device), a running sum exactly at fl(γ · rows)")
    func flexPrefillGammaPointEight() throws {
        // 10 rows of 1: row 0 [1]; rows 1...9 [0.5, 0.5, 0...]. Sorted: (0,0), then the 18 halves in row order:
        // 1 + 14 halves = 8 exactly (rows 1...7), kept; the next half (8,0) gives 8.5.
        let rows = (0..<10).map { m -> [Double] in m == 0 ? [1] : [0.5, 0.5] + [Double](repeating: 0, count: m - 1) }
        #expect(0.8 * 10.0 == 8.0)
        let expected = PatternReference.flexPrefillCoverBlocks(probabilities: rows, gamma: 0.8)
        #expect(expected == [[0]] + (1...7).map { _ in [0, 1] } + [[], []])
        let got = try Self.deviceFlexPrefillCover(rows: rows, gamma: 0.8)
        #expect(got == expected, "device \(got)")
    }

    /// Budgets from γ (docs/PREFILL-METHODS.md 5.4): cover = 1 + the largest prefix of the sorted
    /// vert (or slash) whose sum is `<=` γ, then cover / 128 + 1 blocks, raised to the minimum and
    /// lowered to the maximum. 300 tokens, 128 estimate rows; in column units (vert × 128) the
    /// entries are one 1, 126 halves and 173 quarters, so for γ 0.5 the 127 largest sum to exactly
    /// 64 = γ · 128: kept, cover 128, 2 blocks (a strict test would give cover 127, 1 block).
    @Test("FlexPrefill budgets on the device: an exact hit of γ at the block boundary, the budget bounds",
          arguments: [0.25, 0.5, 0.75, 1.0])
    func flexPrefillBudgets(gamma: Double) throws {
        var random = SeededRandom(seed: 3)
        var column: [Float] = [1] + [Float](repeating: 0.5, count: 126) + [Float](repeating: 0.25, count: 173)
        for i in stride(from: column.count - 1, to: 0, by: -1) { column.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        var diagonal: [Float] = [Float](repeating: 0.5, count: 100) + [Float](repeating: 0.125, count: 200)
        for i in stride(from: diagonal.count - 1, to: 0, by: -1) { diagonal.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        let rows = 128, nb = 3
        let coverV = PatternReference.flexPrefillCover(column.map { Double($0) / Double(rows) }, gamma: gamma)
        let coverS = PatternReference.flexPrefillCover(diagonal.map { Double($0) / Double(rows) }, gamma: gamma)
        if gamma == 0.5 { #expect(coverV == 128) }
        for (minBlocks, maxBlocks) in [(1, Int(Int32.max)), (3, Int(Int32.max)), (1, 1), (3, 2)] {
            let want = (PatternReference.flexPrefillBudget(coverTokens: coverV, blockSize: 128, minBlocks: minBlocks, maxBlocks: min(maxBlocks, nb)),
                        PatternReference.flexPrefillBudget(coverTokens: coverS, blockSize: 128, minBlocks: minBlocks, maxBlocks: min(maxBlocks, nb)))
            // τ 0: no distance is below it, so the head is a vertical-slash head.
            let got = try Self.deviceFlexPrefillChoice(column: column, diagonal: diagonal, rows: rows, gamma: gamma, tau: 0,
                                                       minBlocks: minBlocks, maxBlocks: maxBlocks)
            #expect(!got.queryAware)
            #expect(got.vertical == want.0 && got.slash == want.1,
                    "min \(minBlocks) max \(maxBlocks): device (\(got.vertical), \(got.slash)), reference \(want) (covers \(coverV), \(coverS))")
        }
    }

    /// The Jensen-Shannon test (5.5) is strict, and a zero block probability makes the distance
    /// NaN (upstream's 0 · log 0), which no τ passes. With zero pooled queries and keys pq is
    /// uniform; a column uniform over the 4 key blocks makes the distance exactly 0.
    @Test("FlexPrefill's query-aware test: D < τ strictly; NaN (a zero block) is never query-aware")
    func flexPrefillQueryAwareTest() throws {
        let uniform = [Float](repeating: 0.25, count: 512)
        let diagonal = [Float](repeating: 0.25, count: 512)
        let equal = try Self.deviceFlexPrefillChoice(column: uniform, diagonal: diagonal, rows: 128, gamma: 0.9, tau: 0.1, minBlocks: 2)
        #expect(equal.queryAware && equal.distance == 0)
        #expect(equal.vertical == 2 && equal.slash == 2, "query-aware heads take the minimum budget")
        let atTau = try Self.deviceFlexPrefillChoice(column: uniform, diagonal: diagonal, rows: 128, gamma: 0.9, tau: 0, minBlocks: 2)
        #expect(!atTau.queryAware && atTau.distance == 0, "D = τ = 0 is not below τ")
        var zeroBlock = uniform
        for j in 384..<512 { zeroBlock[j] = 0 }
        let nan = try Self.deviceFlexPrefillChoice(column: zeroBlock, diagonal: diagonal, rows: 128, gamma: 0.9, tau: 1)
        #expect(!nan.queryAware && nan.distance.isNaN)
        #expect(PatternReference.jensenShannonDistance([0.25, 0.25, 0.25, 0.25], [1.0 / 3, 1.0 / 3, 1.0 / 3, 0]).isNaN)
    }
}
