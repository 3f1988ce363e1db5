@testable import MInferenceCL
import Testing

/// The index builders, recall and maps with NaN and ±inf planted in q, k and v
/// (docs/NON-FINITE.md section 2): the device's selections equal the float64 reference's, which
/// evaluates the same NaN rules; every index is in range and every row keeps its forced entries;
/// a value no row reads (masked, another KV head, v) leaves every index bit-identical.
@Suite("Non-finite inputs: index building, recall and maps")
struct NonFiniteIndexTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var dtype: DType
        var length = 333
        var estimation: DeviceProfile.EstimationBackend = .fused
        var seed: UInt64

        var testDescription: String { "\(pattern) N\(length) \(dtype) \(estimation) seed \(seed)" }
    }

    static let xattention = HeadPattern.xAttention(XAttentionParameters(threshold: 0.4, stride: 8, blockSize: 64, chunkSize: 128))
    static let flexVerticalSlash = HeadPattern.flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0, blockSize: 64))
    static let flexQueryAware = HeadPattern.flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 1, blockSize: 64))

    static let cases: [Case] = [
        Case(pattern: .verticalSlash(vertical: 40, slash: 60), dtype: .f32, seed: 1),
        Case(pattern: .verticalSlash(vertical: 40, slash: 60), dtype: .bf16, estimation: .clblast, seed: 2),
        Case(pattern: .verticalSlash(vertical: 60, slash: 150), dtype: .f16, length: 901, seed: 3),
        Case(pattern: .blockSparse(blocks: 3), dtype: .f16, seed: 4),
        Case(pattern: .blockSparse(blocks: 2), dtype: .f32, length: 901, estimation: .clblast, seed: 5),
        Case(pattern: .blockSparse(blocks: 2), dtype: .bf16, seed: 6),
        Case(pattern: xattention, dtype: .f32, seed: 7),
        Case(pattern: xattention, dtype: .f16, seed: 8),
        Case(pattern: xattention, dtype: .bf16, length: 901, seed: 9),
        Case(pattern: flexVerticalSlash, dtype: .f32, seed: 10),
        Case(pattern: flexQueryAware, dtype: .bf16, seed: 11),
        Case(pattern: flexQueryAware, dtype: .f16, length: 901, seed: 12),
    ]

    static let specials: [Float] = [.nan, -.nan, .infinity, -.infinity]

    /// Plants `count` specials at seeded (head, row, channel) positions of `values` ([heads, n, d]),
    /// rows drawn from `rows`.
    static func plant(_ values: inout [Float], heads: Int, n: Int, d: Int, rows: Range<Int>, count: Int,
                      random: inout SeededRandom) {
        for _ in 0..<count {
            let h = Int(random.next() % UInt64(heads)), i = rows.lowerBound + Int(random.next() % UInt64(rows.count))
            values[(h * n + i) * d + Int(random.next() % UInt64(d))] = specials[Int(random.next() % 4)]
        }
    }

    struct Run {
        var report: LayerResult
        var q: Tensor, k: Tensor, v: Tensor
    }

    static func run(_ c: Case, problem: AttentionProblem, q: [Float], k: [Float], v: [Float]) throws -> Run {
        let engine = try TestDevice.engine()
        let context = engine.context
        let q = try Tensor(shape: problem.queryShape, dtype: c.dtype, values: q)
        let k = try Tensor(shape: problem.keyShape, dtype: c.dtype, values: k)
        let v = try Tensor(shape: problem.keyShape, dtype: c.dtype, values: v)
        let out = try DeviceTensor(context: context, shape: q.shape, dtype: problem.outputDType)
        // The device-tensor API does not check for non-finite inputs on the host.
        let report = try engine.run(problem: problem, q: DeviceTensor(context: context, copying: q),
                                    k: DeviceTensor(context: context, copying: k), v: DeviceTensor(context: context, copying: v),
                                    output: out, plan: .uniform(c.pattern, heads: problem.headsQ),
                                    options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: c.estimation))
        return Run(report: report, q: q, k: k, v: v)
    }

    /// Every index as the kernels produced it, to compare runs bit for bit.
    static func fingerprint(_ report: LayerResult) -> [[Int32]] {
        report.indices.verticalSlash.flatMap { [$0.verticals, $0.slashOffsets, $0.blockCount, $0.blockOffset, $0.columnCount, $0.columnIndex] }
            + report.indices.blockSparse.flatMap(\.selected)
            + report.indices.xAttention.flatMap(\.selected)
            + report.indices.flexPrefill.flatMap { [$0.verticalBlocks, $0.slashBlocks] + $0.blocks.selected }
    }

    @Test(arguments: cases)
    func selectionsMatchReference(_ c: Case) throws {
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.length, keyLength: c.length, headDim: 64,
                                           inputDType: c.dtype)
        let n = c.length, d = 64
        let clean = try RandomInputs(problem: problem, seed: c.seed)
        var q = clean.q.floats(), k = clean.k.floats(), v = clean.v.floats()
        var random = SeededRandom(seed: c.seed * 7919)
        // KV head 1 only: heads 0 and 1 stay clean. Anywhere, then where only late rows read it.
        var k1 = [Float](k[(n * d)...])
        Self.plant(&k1, heads: 1, n: n, d: d, rows: 0..<n, count: 1, random: &random)
        Self.plant(&k1, heads: 1, n: n, d: d, rows: (n - 3)..<n, count: 1, random: &random)
        k.replaceSubrange((n * d)..., with: k1)
        // q of heads 2 and 3 (the other heads see clean queries), early and late rows.
        var q23 = [Float](q[(2 * n * d)...])
        Self.plant(&q23, heads: 2, n: n, d: d, rows: 0..<(n / 2), count: 2, random: &random)
        Self.plant(&q23, heads: 2, n: n, d: d, rows: (n - 70)..<n, count: 1, random: &random)
        q.replaceSubrange((2 * n * d)..., with: q23)
        Self.plant(&v, heads: 2, n: n, d: d, rows: 0..<n, count: 3, random: &random)

        let run = try Self.run(c, problem: problem, q: q, k: k, v: v)
        let reference = ReferenceAttention(problem: problem, q: run.q, k: run.k, v: run.v)
        // The index part of the reference check (the outputs are the attention kernels' part).
        let verification = LayerVerification(reference: reference, plan: .uniform(c.pattern, heads: 4), output: try Tensor(
            shape: problem.queryShape, dtype: .f32, values: .init(repeating: 0, count: 4 * n * d)), report: run.report,
            rows: [(0, 0)])
        let problems = verification.problems.filter { !$0.hasPrefix("output:") }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        try Self.checkInvariants(run.report, pattern: c.pattern, n: n)

        // Heads 0 and 1 read nothing planted: bit-identical to a clean run, v's plants included.
        let cleanRun = try Self.run(c, problem: problem, q: clean.q.floats(), k: clean.k.floats(), v: clean.v.floats())
        let same = { (heads: Set<Int>) in Self.fingerprint(Self.only(run.report, heads: heads)) == Self.fingerprint(Self.only(cleanRun.report, heads: heads)) }
        #expect(same([0, 1]), "heads 0 and 1 read no planted value")
        // The plants did reach the estimate: heads 2 and 3 changed.
        #expect(!same([2, 3]), "the planted values changed nothing")
    }

    /// A report with the indices of `heads` only.
    static func only(_ report: LayerResult, heads: Set<Int>) -> LayerResult {
        var report = report
        report.indices.verticalSlash.removeAll { !heads.contains($0.head) }
        report.indices.blockSparse.removeAll { !heads.contains($0.head) }
        report.indices.xAttention.removeAll { !heads.contains($0.head) }
        report.indices.flexPrefill.removeAll { !heads.contains($0.blocks.head) }
        return report
    }

    /// Indices in range; the forced entries kept: vertical-slash's first 30 columns and its
    /// diagonal, XAttention's and FlexPrefill's block 0 and diagonal block in every row.
    static func checkInvariants(_ report: LayerResult, pattern: HeadPattern, n: Int) throws {
        for index in report.indices.verticalSlash {
            #expect(index.verticals.allSatisfy { (0..<n).contains(Int($0)) } && index.slashOffsets.allSatisfy { (0..<n).contains(Int($0)) })
            #expect(Set(index.verticals).isSuperset(of: (0..<Int32(min(30, n)))), "head \(index.head): forced columns")
            #expect(index.slashOffsets.contains(0), "head \(index.head): the diagonal")
        }
        for index in report.indices.blockSparse {
            for (m, row) in index.selected.enumerated() {
                #expect(row.allSatisfy { (0...m).contains(Int($0)) } && row == row.sorted(), "head \(index.head) row \(m): \(row)")
            }
        }
        let lists = report.indices.xAttention + report.indices.flexPrefill.map(\.blocks)
        for index in lists {
            for (m, row) in index.selected.enumerated() {
                #expect(row.allSatisfy { (0...m).contains(Int($0)) } && row == row.sorted(), "head \(index.head) row \(m): \(row)")
                #expect(row.contains(0) && row.contains(Int32(m)), "head \(index.head) row \(m) lacks block 0 or its diagonal: \(row)")
            }
        }
    }

    /// The vertical-slash estimate reads only the last 64 queries: NaN in every earlier query row
    /// leaves the whole index bit-identical.
    @Test("Queries the estimate never reads leave the vertical-slash index bit-identical")
    func unreadQueriesLeaveIndexIdentical() throws {
        let c = Case(pattern: .verticalSlash(vertical: 40, slash: 60), dtype: .f32, seed: 21)
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.length, keyLength: c.length, headDim: 64, inputDType: .f32)
        let clean = try RandomInputs(problem: problem, seed: c.seed)
        var q = clean.q.floats()
        for h in 0..<4 { for i in 0..<(c.length - 64) { q[(h * c.length + i) * 64 + (i + h) % 64] = Self.specials[(i + h) % 4] } }
        let poisoned = try Self.run(c, problem: problem, q: q, k: clean.k.floats(), v: clean.v.floats())
        let cleanRun = try Self.run(c, problem: problem, q: clean.q.floats(), k: clean.k.floats(), v: clean.v.floats())
        let identical = Self.fingerprint(poisoned.report) == Self.fingerprint(cleanRun.report)
        #expect(identical)
    }

    // MARK: Recall and maps

    /// Recall: a head whose rows read a NaN or inf is NaN (not clamped to 1, not 0); the other
    /// heads are bit-identical to a clean run. Maps: only the cells of rows that read the value
    /// are NaN (a key only the last row reads poisons only the last row band), the rest identical.
    @Test("Recall and map pixels that read a non-finite value are NaN; the others are bit-identical",
          arguments: [(DType.f32, Float.nan), (.f16, -.nan), (.bf16, .infinity)])
    func recallAndMaps(dtype: DType, special: Float) throws {
        let engine = try TestDevice.engine()
        let context = engine.context
        let n = 301, d = 64, cells = 37
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: n, keyLength: n, headDim: d, inputDType: dtype)
        let clean = try RandomInputs(problem: problem, seed: 41)
        var q = clean.q.floats(), k = clean.k.floats()
        q[(1 * n + 100) * d + 5] = special       // head 1, row 100
        k[(1 * n + (n - 1)) * d + 7] = .nan      // KV head 1, the last key: only row n - 1 reads it
        func measure(_ q: [Float], _ k: [Float]) throws -> (recall: [Double], maps: [[Float]]) {
            let recall = try AttentionRecall(
                context: context, problem: problem,
                q: try DeviceTensor(context: context, copying: try Tensor(shape: problem.queryShape, dtype: dtype, values: q)),
                k: try DeviceTensor(context: context, copying: try Tensor(shape: problem.keyShape, dtype: dtype, values: k)))
            let coverages: [(head: Int, coverage: HeadCoverage)] = (0..<4).flatMap { h in
                [(h, HeadCoverage.dense), (h, .aShape(sink: 4, window: 32)), (h, .triShape(sink: 4, window: 32, last: 50))]
            }
            return (try recall.recall(coverages), try recall.attentionMaps(heads: [0, 1, 2, 3], cells: cells, pooling: .max)
                        + recall.attentionMaps(heads: [1, 2], cells: cells, pooling: .mean))
        }
        let poisoned = try measure(q, k), reference = try measure(clean.q.floats(), clean.k.floats())
        for (slot, (got, want)) in zip(poisoned.recall, reference.recall).enumerated() {
            let head = slot / 3
            if head == 0 { #expect(got.bitPattern == want.bitPattern, "recall slot \(slot)") } else { #expect(got.isNaN, "recall slot \(slot): \(got)") }
        }
        let lastBand = cells - 1, band100 = (0..<cells).first { (($0 + 1) * n / cells) > 100 }!
        for (index, (got, want)) in zip(poisoned.maps, reference.maps).enumerated() {
            let head = [0, 1, 2, 3, 1, 2][index]
            var wrong: [String] = []
            for r in 0..<cells {
                for c in 0..<cells {
                    let g = got[r * cells + c], w = want[r * cells + c]
                    let reads = w >= 0 && ((head >= 2 && r == lastBand) || (head == 1 && r == band100 && c <= r))
                    if reads ? !g.isNaN : g.bitPattern != w.bitPattern { wrong.append("(\(r), \(c)): \(g) vs \(w)") }
                }
            }
            #expect(wrong.isEmpty, "map \(index) (head \(head)): \(wrong.count) cells, \(wrong.prefix(4))")
        }
    }
}
