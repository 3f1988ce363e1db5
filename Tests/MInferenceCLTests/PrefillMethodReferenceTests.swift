import Foundation
import MInferenceCL
import RealModule
import Testing

/// The float64 references of issue 16's prefill methods (docs/PREFILL-METHODS.md): Tri-shape,
/// XAttention and FlexPrefill, against the spec's worked examples, hand-made cases at the exact
/// thresholds, brute-force definitions, and upstream's own code (Fixtures/prefill-methods, made by
/// make_fixtures.py beside them from upstream's functions run on the CPU).
@Suite("Prefill method references")
struct PrefillMethodReferenceTests {
    // MARK: - Tri-shape

    @Test func triShapeMatchesBruteForce() {
        for n in [1, 2, 7, 50] {
            for sink in [0, 1, 3] {
                for window in [0, 1, 4, 60] {
                    for last in [0, 1, 5, n, n + 3] {
                        let dense = min(last, n)
                        for i in 0..<n {
                            let expected = (0...i).filter { j in i >= n - dense || j < sink || i - j < window }
                            let got = PatternReference.triShapeKeys(query: i, length: n, sink: sink, window: window, last: last)
                            #expect(got == expected, "N \(n) sink \(sink) window \(window) last \(last) query \(i)")
                        }
                    }
                }
            }
        }
    }

    @Test func triShapeEdgeCases() {
        // last = 0 is plain A-shape; last >= N (N = 1 included) makes every row dense.
        for i in 0..<40 {
            #expect(PatternReference.triShapeKeys(query: i, length: 40, sink: 2, window: 5, last: 0)
                == PatternReference.coveredKeys(aShapeSink: 2, window: 5, query: i), "query \(i)")
            #expect(PatternReference.triShapeKeys(query: i, length: 40, sink: 2, window: 5, last: 40) == Array(0...i))
        }
        #expect(PatternReference.triShapeKeys(query: 0, length: 1, sink: 0, window: 0, last: 1) == [0])
        // Upstream's defaults (128, 3968, 100) at N = 5000: query 4899 is the last A-shape row.
        #expect(PatternReference.triShapeKeys(query: 4899, length: 5000, sink: 128, window: 3968, last: 100)
            == Array(0..<128) + Array(932...4899))
        #expect(PatternReference.triShapeKeys(query: 4900, length: 5000, sink: 128, window: 3968, last: 100) == Array(0...4900))
    }

    // MARK: - block-selection keys

    @Test func coveredKeysOfAnyBlockSize() {
        let selection = [[0], [0, 1], [0, 2], [1, 3]]
        for i in 0..<250 {
            #expect(PatternReference.coveredKeys(blockSelection: selection, blockSize: 64, query: i, length: 250)
                == PatternReference.coveredKeys(blockSelection: selection, query: i, length: 250), "query \(i)")
        }
        let wide = [[0], [0, 1], [0, 2]]
        #expect(PatternReference.coveredKeys(blockSelection: wide, blockSize: 128, query: 300, length: 301)
            == Array(0..<128) + Array(256...300))
        #expect(PatternReference.coveredKeys(blockSelection: wide, blockSize: 128, query: 130, length: 301) == Array(0...130))
    }

    // MARK: - XAttention selection: section 4.7

    /// A score matrix of `rows` query blocks, zero except the entries of `row`.
    private func scores(rows: Int, row: Int, _ entries: [Int: Double]) -> [[Double]] {
        (0..<rows).map { m in (0...m).map { n in m == row ? entries[n, default: 0] : 0 } }
    }

    @Test func xAttentionWorkedExamples() {
        // Row 20 (chunk 1): F = {0, 20}; blocks 5, 7, 11 taken; 12 ties 11 and loses.
        let late = scores(rows: 21, row: 20, [0: 3, 20: 4, 5: 5, 7: 2, 11: 1, 12: 1])
        #expect(PatternReference.xAttentionSelection(scores: late, threshold: 0.9, blockSize: 128, length: 21 * 128)[20]
            == [0, 5, 7, 11, 20])
        // Row 6 (chunk 0): F = {6}, the running sum lags by one block: the whole causal row but 3, 5.
        let early = scores(rows: 7, row: 6, [6: 4, 0: 6, 2: 3, 4: 2, 1: 1])
        #expect(PatternReference.xAttentionSelection(scores: early, threshold: 0.9, blockSize: 128, length: 7 * 128)[6]
            == [0, 1, 2, 4, 6])
        // The same row under the later chunks' rule (chunks of 2 blocks put row 6 in chunk 3).
        #expect(PatternReference.xAttentionSelection(scores: early, threshold: 0.9, blockSize: 128, length: 7 * 128,
                                                     chunkSize: 256)[6] == [0, 2, 4, 6])
    }

    /// Running sums that land exactly on `R = tau * T` (binary fractions, so float64 is exact):
    /// the strict `<` leaves the block there out.
    @Test func xAttentionStrictThreshold() {
        // Chunk 1, T = 16, R = 8: F mass 4, block 3 (tie 3/9/12, smaller index first) at 4 < 8
        // taken, block 9 at exactly 8 not.
        let row = scores(rows: 21, row: 20, [0: 2, 20: 2, 3: 4, 9: 4, 12: 4])
        #expect(PatternReference.xAttentionSelection(scores: row, threshold: 0.5, blockSize: 128, length: 2688)[20] == [0, 3, 20])
        #expect(PatternReference.xAttentionSelection(scores: row, threshold: 0.5 + 0x1p-20, blockSize: 128, length: 2688)[20]
            == [0, 3, 9, 20])
        // Chunk 0 with the lag: F = {5} (mass 4); others 0, 1 (4 each), 2, 3 (2 each). Block 0 is
        // free, block 1 is tested against 4, block 2 against 4 + 4 = 8 = R: out.
        let early = scores(rows: 6, row: 5, [5: 4, 0: 4, 1: 4, 2: 2, 3: 2])
        #expect(PatternReference.xAttentionSelection(scores: early, threshold: 0.5, blockSize: 128, length: 768)[5] == [0, 1, 5])
        // tau = 1: everything causal; R = T is only reached after the last positive block.
        #expect(PatternReference.xAttentionSelection(scores: early, threshold: 1, blockSize: 128, length: 768)[5]
            == [0, 1, 2, 3, 4, 5])
    }

    @Test func xAttentionForcedBlocksAndZeroRows() {
        // An all-zero row (R = 0): only the forced blocks and block 0.
        let zero = scores(rows: 21, row: -1, [:])
        let selection = PatternReference.xAttentionSelection(scores: zero, threshold: 0.9, blockSize: 128, length: 2688)
        for m in 0..<21 { #expect(selection[m] == (m == 0 ? [0] : [0, m]), "row \(m)") }
        // tau = 0: the forced blocks, plus block 0 in the first chunk too.
        let mass = scores(rows: 21, row: 20, [3: 8, 20: 8])
        #expect(PatternReference.xAttentionSelection(scores: mass, threshold: 0, blockSize: 128, length: 2688)[20] == [0, 20])
        let early = scores(rows: 21, row: 9, [3: 8, 9: 8])
        #expect(PatternReference.xAttentionSelection(scores: early, threshold: 0, blockSize: 128, length: 2688)[9] == [0, 9])
    }

    // MARK: - XAttention scores: section 4.4-4.5

    /// With q = 0 every strided row is uniform over `c <= r`, so `Sc[m][n]` is a sum of
    /// `1 / (r + 1)`; each row sums to its number of strided rows.
    @Test func xAttentionScoresUniform() throws {
        let n = 45, stride = 4, block = 8
        let problem = try AttentionProblem(headsQ: 1, headsKV: 1, queryLength: n, keyLength: n, headDim: 8, inputDType: .f32)
        var random = SeededRandom(seed: 3)
        let k = try Tensor(shape: problem.keyShape, dtype: .f32, values: random.normals(n * 8))
        let zero = try Tensor(shape: problem.queryShape, dtype: .f32, values: [Float](repeating: 0, count: n * 8))
        let reference = ReferenceAttention(problem: problem, q: zero, k: k, v: k)
        let sc = PatternReference.xAttentionBlockScores(reference: reference, head: 0, stride: stride, blockSize: block)
        let strided = (n + stride - 1) / stride  // 12 strided rows, 2 per block: 6 blocks
        #expect(sc.count == 6 && sc.enumerated().allSatisfy { $1.count == $0 + 1 })
        for m in 0..<sc.count {
            for b in 0...m {
                var expected = 0.0
                for r in (2 * m)..<min(2 * m + 2, strided) {
                    for c in (2 * b)..<(2 * b + 2) where c <= r { expected += 1 / Double(r + 1) }
                }
                #expect(abs(sc[m][b] - expected) < 1e-12, "Sc[\(m)][\(b)] = \(sc[m][b]), expected \(expected)")
            }
        }
        let quarter = PatternReference.xAttentionBlockScores(reference: reference, head: 0, stride: stride, blockSize: block,
                                                             rounding: { ($0 * 4).rounded() / 4 })
        #expect(quarter.joined().allSatisfy { ($0 * 4).rounded() == $0 * 4 }, "Sc is stored in the rounding's grid")
    }

    /// Against the torch estimate's formulation (section 4.4): query rows regrouped as
    /// `[q[Sr+S-1], ..., q[Sr]]`, key rows as `[k[Sc], ..., k[Sc+S-1]]` (zero past N), one dot
    /// product per pair, the full `R x R` matrix masked to `c <= r`, then 2 x 2 strided tiles summed.
    @Test func xAttentionScoresMatchRegroupedProducts() throws {
        let n = 45, d = 8, stride = 4, block = 8
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: n, keyLength: n, headDim: d, inputDType: .f32)
        var random = SeededRandom(seed: 5)
        let qValues = random.normals(2 * n * d, scale: 2), kValues = random.normals(n * d, scale: 2)
        let reference = ReferenceAttention(problem: problem, q: try Tensor(shape: problem.queryShape, dtype: .f32, values: qValues),
                                           k: try Tensor(shape: problem.keyShape, dtype: .f32, values: kValues),
                                           v: try Tensor(shape: problem.keyShape, dtype: .f32, values: kValues))
        let rows = (n + stride - 1) / stride
        func row(_ values: [Float], base: Int, _ token: Int) -> [Double] {
            token < n ? (0..<d).map { Double(values[base + token * d + $0]) } : [Double](repeating: 0, count: d)
        }
        for head in 0..<2 {
            let regroupedQ = (0..<rows).map { r in (0..<stride).flatMap { row(qValues, base: head * n * d, stride * r + stride - 1 - $0) } }
            let regroupedK = (0..<rows).map { c in (0..<stride).flatMap { row(kValues, base: 0, stride * c + $0) } }
            var expected = [[Double]](repeating: [Double](repeating: 0, count: 6), count: 6)
            for r in 0..<rows {
                let logits = (0..<rows).map { c in
                    c <= r ? zip(regroupedQ[r], regroupedK[c]).reduce(0) { $0 + $1.0 * $1.1 } / (Double(stride) * Double(d).squareRoot())
                        : -Double.infinity
                }
                let top = logits.max()!
                let total = logits.reduce(0) { $0 + Double.exp($1 - top) }
                for c in 0..<rows { expected[r / 2][c / 2] += Double.exp(logits[c] - top) / total }
            }
            let sc = PatternReference.xAttentionBlockScores(reference: reference, head: head, stride: stride, blockSize: block)
            #expect(sc.count == 6)
            for m in 0..<6 {
                #expect(sc[m].count == m + 1)
                for b in 0...m {
                    #expect(abs(sc[m][b] - expected[m][b]) < 1e-12, "head \(head) Sc[\(m)][\(b)] = \(sc[m][b]), expected \(expected[m][b])")
                }
            }
        }
    }

    // MARK: - FlexPrefill: budgets, distance, block rules (section 5.4-5.7)

    @Test func flexPrefillCoverCounts() {
        let x = [0.125, 0.5, 0.125, 0.25]
        #expect(PatternReference.flexPrefillCover(x, gamma: 0.75) == 3, "0.5 + 0.25 = 0.75 is within gamma: one more")
        #expect(PatternReference.flexPrefillCover(x, gamma: 0.74) == 2)
        #expect(PatternReference.flexPrefillCover(x, gamma: 0.4) == 1)
        #expect(PatternReference.flexPrefillCover(x, gamma: 1) == 5, "every prefix within gamma: count + 1")
    }

    @Test func flexPrefillBudgetFormula() {
        func budget(_ tokens: Int, min: Int = 1, max: Int = 1000) -> Int {
            PatternReference.flexPrefillBudget(coverTokens: tokens, blockSize: 128, minBlocks: min, maxBlocks: max)
        }
        #expect(budget(5000) == 40, "section 5.4's example: 5000 // 128 + 1")
        #expect(budget(127) == 1 && budget(128) == 2 && budget(255) == 2 && budget(256) == 3)
        #expect(budget(100, min: 3) == 3, "raised to the minimum")
        #expect(budget(5000, max: 10) == 10, "lowered to the maximum")
        #expect(budget(100, min: 8, max: 5) == 5, "the maximum wins over the minimum")
    }

    @Test func flexPrefillCoverBlocksKeepsTheCrossingOut() {
        // nb = 3, gamma nb = 1.5: (0,0) = 1 and then (1,0) = 0.5 (flat 3, before (1,1) = flat 4 and
        // (2,2) = flat 8 at the same value) reach exactly 1.5 and stay; the next would cross.
        let p: [[Double]] = [[1], [0.5, 0.5], [0.25, 0.25, 0.5]]
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: p, gamma: 0.5) == [[0], [0], []])
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: p, gamma: 0.6) == [[0], [0], []])
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: p, gamma: 2.0 / 3) == [[0], [0, 1], []])
        #expect(PatternReference.flexPrefillCoverBlocks(probabilities: p, gamma: 1) == [[0], [0, 1], [0, 1, 2]])
    }

    @Test func flexPrefillVerticalSlashBlocks() {
        #expect(PatternReference.flexPrefillVerticalSlashBlocks(verticals: [0, 2], distances: [0, 1], blocks: 4)
            == [[0], [0, 1], [0, 1, 2], [0, 2, 3]])
        #expect(PatternReference.flexPrefillVerticalSlashBlocks(verticals: [0], distances: [0, 3], blocks: 4)
            == [[0], [0, 1], [0, 2], [0, 3]])
    }

    @Test func jensenShannonDistance() {
        #expect(PatternReference.jensenShannonDistance([0.25, 0.75], [0.25, 0.75]) == 0)
        let d = PatternReference.jensenShannonDistance([0.5, 0.5], [0.25, 0.75])
        let m = [0.375, 0.625]
        let expected = (0.5 * (0.5 * Double.log(0.5 / m[0]) + 0.5 * Double.log(0.5 / m[1]))
            + 0.5 * (0.25 * Double.log(0.25 / m[0]) + 0.75 * Double.log(0.75 / m[1]))).squareRoot()
        #expect(abs(d - expected) < 1e-15 && abs(d - PatternReference.jensenShannonDistance([0.25, 0.75], [0.5, 0.5])) < 1e-15)
        #expect(PatternReference.jensenShannonDistance([1, 0], [0.5, 0.5]).isNaN, "0 ln 0 is NaN, as upstream's")
    }

    /// A problem of `heads` query heads over one KV head: keys N(0, 1) with `spike` (a key token)
    /// given a large component along channel 0, and each head's queries from `query(head)`.
    private func flexProblem(n: Int, heads: Int, spike: Int, query: (Int) -> [Float]) throws -> ReferenceAttention {
        let d = 16
        let problem = try AttentionProblem(headsQ: heads, headsKV: 1, queryLength: n, keyLength: n, headDim: d, inputDType: .f32)
        var random = SeededRandom(seed: 17)
        var kValues = random.normals(n * d)
        kValues[spike * d] = 60
        let q = try Tensor(shape: problem.queryShape, dtype: .f32, values: (0..<heads).flatMap(query))
        let k = try Tensor(shape: problem.keyShape, dtype: .f32, values: kValues)
        return ReferenceAttention(problem: problem, q: q, k: k, v: k)
    }

    /// The JS test's direction: a head whose attention the pooled estimate predicts (q = 0: uniform
    /// attention, uniform pooled estimate) has a small distance and is query-aware; a head that
    /// attends one key (whose block mean dilutes it) has a large one and stays vertical-slash.
    @Test func flexPrefillDistanceDirection() throws {
        let n = 1024, spike = 300
        let reference = try flexProblem(n: n, heads: 2, spike: spike) { head in
            (0..<(n * 16)).map { head == 1 && $0 % 16 == 0 ? 1 : 0 }
        }
        func select(_ head: Int, tau: Double) -> FlexPrefillHeadSelection {
            PatternReference.flexPrefillSelection(reference: reference, head: head, gamma: 0.9, tau: tau, minBudget: nil, maxBudget: nil)
        }
        let uniform = select(0, tau: 0.1), peaked = select(1, tau: 0.1)
        #expect(uniform.distance < 0.1 && peaked.distance > 0.5, "distances \(uniform.distance), \(peaked.distance)")
        #expect(uniform.queryAware && !peaked.queryAware)
        // Query-aware: nV = nS = minB = 1, plus the gamma * nb = 7.2 cover of the uniform pooled
        // attention: rows 0-6 whole (mass 7), then the first 1/8 of row 7 (key block 0).
        #expect(uniform.verticalBlocks == 1 && uniform.slashBlocks == 1)
        #expect(uniform.blocks == (0..<7).map { Array(0...$0) } + [[0, 7]], "\(uniform.blocks)")
        // The peaked head puts > 0.9 of its attention on one token: cover = 1 token, so
        // nV = 1 // 128 + 1 = 1, and the slash is spread over 128 diagonals of 1/128 each (cover
        // 116 tokens, nS = 1): the budgets go to the forced block 0 and the diagonal, and the spike's
        // block 2 is not selected (upstream's rule, section 5.4 and 5.6).
        #expect(peaked.verticalBlocks == 1 && peaked.slashBlocks == 1)
        #expect(peaked.blocks == (0..<8).map { $0 == 0 ? [0] : [0, $0] }, "\(peaked.blocks)")
        // tau = 0: no head is query-aware; tau = 1 (above the largest distance, sqrt(ln 2)): both.
        #expect(!select(0, tau: 0).queryAware && select(1, tau: 1).queryAware)
    }

    @Test func flexPrefillShortSequencesAreDense() throws {
        // N <= max(256, ceil(min_budget / 128) * 128) is dense.
        let cases: [(n: Int, minBudget: Int?, dense: Bool)] = [(256, nil, true), (257, nil, false), (1000, 1000, true),
                                                               (1024, 1000, true), (1025, 1000, false)]
        for (n, minBudget, dense) in cases {
            let reference = try flexProblem(n: n, heads: 1, spike: 5) { _ in [Float](repeating: 0.1, count: n * 16) }
            let selection = PatternReference.flexPrefillSelection(reference: reference, head: 0, gamma: 0.9, tau: 0.1,
                                                                  minBudget: minBudget, maxBudget: nil)
            #expect(selection.distance.isNaN == dense, "N \(n) min_budget \(String(describing: minBudget))")
            let nb = (n + 127) / 128
            if dense { #expect(selection.blocks == (0..<nb).map { Array(0...$0) } && !selection.queryAware) }
        }
    }

    // MARK: - upstream's code (Fixtures/prefill-methods)

    struct Fixture: Decodable {
        struct Input: Decodable {
            let q: String, k: String, length: Int, headsQ: Int, headsKV: Int, headDim: Int
        }
        struct XAttentionCase: Decodable {
            let input: String, threshold: Double
            let blocks: [[[Int]]]
        }
        struct FlexPrefillCase: Decodable {
            let input: String, gamma: Double, tau: Double, minBudget: Int?, maxBudget: Int?, dense: Bool
            let distance: [Double]?
            let blocks: [[[Int]]]
        }
        let inputs: [String: Input]
        let xattentionScores: [String: [[[Double]]]]
        let xattention: [XAttentionCase]
        let flexprefill: [FlexPrefillCase]
    }

    static func fixture() throws -> Fixture {
        let path = fixturePath("prefill-methods/expected.json")
        guard let data = FileManager.default.contents(atPath: path) else { throw TensorFileError.missing(path: path) }
        return try JSONDecoder().decode(Fixture.self, from: data)
    }

    static func reference(_ fixture: Fixture, _ name: String) throws -> ReferenceAttention {
        let input = try #require(fixture.inputs[name], "no input \(name) in expected.json")
        let folder = fixturePath("prefill-methods/")
        let q = try NPYFile.read(folder + input.q), k = try NPYFile.read(folder + input.k)
        let problem = try AttentionProblem(q: q.shape, k: k.shape, v: k.shape, dtype: .f32)
        #expect(problem.queryLength == input.length && problem.headsQ == input.headsQ && problem.headsKV == input.headsKV
            && problem.headDim == input.headDim, "\(name): npy shapes \(q.shape), \(k.shape) disagree with expected.json")
        return ReferenceAttention(problem: problem, q: q, k: k, v: k)
    }

    @Test("XAttention equals upstream's xattn_estimate + find_blocks_chunked", arguments: ["n1000", "n2500", "n3001"])
    func xAttentionMatchesUpstream(_ name: String) throws {
        let fixture = try Self.fixture()
        let reference = try Self.reference(fixture, name)
        let upstreamScores = try #require(fixture.xattentionScores[name])
        let cases = fixture.xattention.filter { $0.input == name }
        #expect(cases.count == 2, "\(name): expected the thresholds 0.5 and 0.9")
        for head in 0..<reference.problem.headsQ {
            let scores = PatternReference.xAttentionBlockScores(reference: reference, head: head, stride: 8, blockSize: 128)
            let upstream = upstreamScores[head]
            #expect(scores.count == upstream.count, "\(name) head \(head): \(scores.count) block rows, upstream \(upstream.count)")
            var worst = 0.0
            for (ours, theirs) in zip(scores, upstream) {
                #expect(ours.count == theirs.count)
                for (a, b) in zip(ours, theirs) { worst = max(worst, abs(a - b)) }
            }
            // Upstream's torch estimate runs in fp32: block sums of up to 256 probabilities.
            #expect(worst < 2e-5, "\(name) head \(head): block scores differ from upstream's by up to \(worst)")
            for c in cases {
                let ours = PatternReference.xAttentionSelection(scores: scores, threshold: c.threshold, blockSize: 128,
                                                                length: reference.problem.keyLength)
                for (m, (mine, theirs)) in zip(ours, c.blocks[head]).enumerated() {
                    #expect(mine == theirs, "\(name) tau \(c.threshold) head \(head) query block \(m): reference \(mine), upstream \(theirs)")
                }
                #expect(ours.count == c.blocks[head].count)
            }
        }
    }

    @Test("FlexPrefill equals upstream's flexprefill_forward selection", arguments: ["n1000", "n3001"])
    func flexPrefillMatchesUpstream(_ name: String) throws {
        let fixture = try Self.fixture()
        let reference = try Self.reference(fixture, name)
        let cases = fixture.flexprefill.filter { $0.input == name }
        let expectedCases = ["n1000": 6, "n3001": 5][name]
        #expect(cases.count == expectedCases, "\(name): \(cases.count) FlexPrefill cases in expected.json, expected \(expectedCases ?? 0)")
        var clamps = Set<String>()
        for c in cases {
            for head in 0..<reference.problem.headsQ {
                let label = "\(name) gamma \(c.gamma) tau \(c.tau) budgets (\(c.minBudget.map(String.init) ?? "nil"), "
                    + "\(c.maxBudget.map(String.init) ?? "nil")) head \(head)"
                let ours = PatternReference.flexPrefillSelection(reference: reference, head: head, gamma: c.gamma, tau: c.tau,
                                                                 minBudget: c.minBudget, maxBudget: c.maxBudget)
                #expect(ours.distance.isNaN == c.dense, "\(label): dense \(c.dense) upstream")
                if let distances = c.distance {
                    #expect(abs(ours.distance - distances[head]) < 1e-4,
                            "\(label): JS distance \(ours.distance), upstream \(distances[head])")
                    #expect(ours.queryAware == (distances[head] < c.tau), "\(label): head kind")
                }
                #expect(ours.blocks.count == c.blocks[head].count)
                for (m, (mine, theirs)) in zip(ours.blocks, c.blocks[head]).enumerated() {
                    #expect(mine == theirs, "\(label) query block \(m): reference \(mine), upstream \(theirs)")
                }
                if let minBudget = c.minBudget, let maxBudget = c.maxBudget, !ours.queryAware {
                    let free = PatternReference.flexPrefillSelection(reference: reference, head: head, gamma: c.gamma, tau: c.tau,
                                                                     minBudget: nil, maxBudget: nil)
                    let (minB, maxB) = ((minBudget + 127) / 128, (maxBudget + 127) / 128)
                    for (budgeted, unbudgeted) in [(ours.verticalBlocks, free.verticalBlocks), (ours.slashBlocks, free.slashBlocks)] {
                        #expect(budgeted == min(max(unbudgeted, minB), maxB), "\(label): \(unbudgeted) blocks clamped to \(budgeted)")
                        if unbudgeted < minB { clamps.insert("raised") }
                        if unbudgeted > maxB { clamps.insert("lowered") }
                    }
                }
            }
        }
        // n1000's budgets (3 to 4 blocks) raise some heads' budgets and lower others'; n3001's
        // (3 to 6) only raise its sparse vertical-slash head's.
        let expectedClamps: Set<String> = name == "n1000" ? ["raised", "lowered"] : ["raised"]
        #expect(clamps == expectedClamps, "\(name): the budget cases clamped \(clamps.sorted()), expected \(expectedClamps.sorted())")
    }

    /// The fixtures exercise what they are meant to: both FlexPrefill head kinds, and XAttention
    /// selections that are neither all nor nothing.
    @Test func fixturesCoverBothHeadKindsAndSparseRows() throws {
        let fixture = try Self.fixture()
        var kinds = Set<Bool>()
        for c in fixture.flexprefill { for d in c.distance ?? [] { kinds.insert(d < c.tau) } }
        #expect(kinds == [true, false], "FlexPrefill fixtures hold query-aware and vertical-slash heads")
        #expect(fixture.flexprefill.contains { $0.dense } && fixture.flexprefill.contains { $0.maxBudget != nil })
        let sparse = fixture.xattention.flatMap { $0.blocks.flatMap { $0.enumerated().filter { m, row in row.count < m + 1 } } }
        #expect(sparse.count > 50, "XAttention fixtures have \(sparse.count) rows that skip a causal block")
    }
}
