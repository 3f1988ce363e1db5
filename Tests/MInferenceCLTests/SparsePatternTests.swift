import MInferenceCL
import Testing

/// Each sparse pattern against the independent float64 reference (PatternReference): the
/// selected indices, the block-form index lists, and the output over exactly the covered keys.
@Suite("Sparse patterns against the float64 reference")
struct SparsePatternTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var headsQ: Int
        var headsKV: Int
        var length: Int
        var headDim: Int
        var dtype: DType
        var estimation: DeviceProfile.EstimationBackend = .fused
        var batch: Int = 1

        var testDescription: String {
            "\(pattern) B\(batch) Hq\(headsQ)/Hkv\(headsKV) N\(length) d\(headDim) \(dtype) \(estimation)"
        }
    }

    static let cases: [Case] = [
        Case(pattern: .aShape(sink: 4, window: 16), headsQ: 9, headsKV: 3, length: 1, headDim: 64, dtype: .f32),
        Case(pattern: .aShape(sink: 7, window: 50), headsQ: 4, headsKV: 1, length: 333, headDim: 128, dtype: .f16),
        Case(pattern: .aShape(sink: 64, window: 64), headsQ: 2, headsKV: 2, length: 200, headDim: 96, dtype: .bf16),
        Case(pattern: .aShape(sink: 500, window: 3), headsQ: 9, headsKV: 3, length: 130, headDim: 64, dtype: .f16),
        Case(pattern: .verticalSlash(vertical: 40, slash: 60), headsQ: 9, headsKV: 3, length: 1, headDim: 64, dtype: .f32),
        Case(pattern: .verticalSlash(vertical: 40, slash: 60), headsQ: 9, headsKV: 3, length: 37, headDim: 64, dtype: .f32),
        Case(pattern: .verticalSlash(vertical: 30, slash: 100), headsQ: 4, headsKV: 1, length: 777, headDim: 128, dtype: .f16),
        Case(pattern: .verticalSlash(vertical: 64, slash: 150), headsQ: 8, headsKV: 2, length: 1000, headDim: 64, dtype: .bf16,
             estimation: .clblast),
        Case(pattern: .verticalSlash(vertical: 100, slash: 200), headsQ: 2, headsKV: 1, length: 640, headDim: 96, dtype: .f32),
        Case(pattern: .verticalSlash(vertical: 5, slash: 5), headsQ: 2, headsKV: 1, length: 300, headDim: 64, dtype: .f16, batch: 2),
        Case(pattern: .blockSparse(blocks: 3), headsQ: 9, headsKV: 3, length: 1, headDim: 64, dtype: .f32),
        Case(pattern: .blockSparse(blocks: 3), headsQ: 9, headsKV: 3, length: 500, headDim: 64, dtype: .f16),
        Case(pattern: .blockSparse(blocks: 4), headsQ: 4, headsKV: 2, length: 640, headDim: 128, dtype: .bf16, estimation: .clblast),
        Case(pattern: .blockSparse(blocks: 2), headsQ: 2, headsKV: 1, length: 200, headDim: 64, dtype: .f32, batch: 2),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(batch: c.batch, headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.length,
                                           keyLength: c.length, headDim: c.headDim, inputDType: c.dtype)
        let inputs = RandomInputs(problem: problem, seed: UInt64(c.length * 31 + c.headsQ * 7 + c.headDim))
        let check = try SparseCheck(engine: engine, problem: problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                    plan: .uniform(c.pattern, heads: c.headsQ), estimation: c.estimation)
        try check.verify()
    }

    @Test("Real SmolLM2 attention, every pattern", arguments: ["smollm2-layer20-n777", "smollm2-layer03-n300"])
    func realData(_ fixture: String) throws {
        let engine = try TestDevice.engine()
        let folder = fixturePath(fixture)
        let q = try NPYFile.read(folder + "/q.npy"), k = try NPYFile.read(folder + "/k.npy"), v = try NPYFile.read(folder + "/v.npy")
        let problem = try AttentionProblem(q: q.shape, k: k.shape, v: v.shape, dtype: q.dtype)
        // One pattern kind per group of three heads, budgets that make every pattern sparse at this length.
        let plan = LayerPlan(heads: [
            .verticalSlash(vertical: 40, slash: 120), .verticalSlash(vertical: 30, slash: 100), .verticalSlash(vertical: 80, slash: 60),
            .aShape(sink: 16, window: 128), .aShape(sink: 4, window: 64), .dense,
            .blockSparse(blocks: 3), .blockSparse(blocks: 2), .blockSparse(blocks: 5),
        ])
        let check = try SparseCheck(engine: engine, problem: problem, q: q, k: k, v: v, plan: plan, estimation: .fused)
        try check.verify()
    }
}

/// Runs a layer plan with its indices kept and checks everything against PatternReference.
struct SparseCheck {
    let problem: AttentionProblem
    let plan: LayerPlan
    let reference: ReferenceAttention
    let output: Tensor
    let report: LayerResult

    init(engine: AttentionEngine, problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, plan: LayerPlan,
         estimation: DeviceProfile.EstimationBackend) throws {
        self.problem = problem
        self.plan = plan
        reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let context = engine.context
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: q.shape, dtype: problem.outputDType)
        try out.poison()
        report = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan,
                                options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: estimation))
        output = try out.download()
    }

    /// The covered keys of every (flattened head, query), from the reference's own selection.
    func verify() throws {
        let n = problem.queryLength
        #expect(allFinite(output), "unwritten or non-finite outputs: \(problem)")
        var covered: [Int: (Int) -> [Int]] = [:]
        for index in report.indices.verticalSlash {
            guard case .verticalSlash(let v, let s) = plan.heads[index.head % problem.headsQ] else { Issue.record("wrong head kind"); continue }
            let expected = PatternReference.verticalSlashEstimate(reference: reference, head: index.head, vertical: v, slash: s)
            #expect(agreeUpToTies(index.verticals.map(Int.init), expected.verticals, scores: expected.columnScores),
                    "head \(index.head) verticals differ beyond ties: \(Self.difference(index.verticals.map(Int.init), expected.verticals))")
            #expect(agreeUpToTies(index.slashOffsets.map(Int.init), expected.slashOffsets, scores: expected.diagonalScores),
                    "head \(index.head) slashes differ beyond ties: \(Self.difference(index.slashOffsets.map(Int.init), expected.slashOffsets))")
            #expect(index.slashOffsets == index.slashOffsets.sorted(by: >), "slash offsets must be descending")
            // The block form must be exactly the reference conversion of the device's own selection.
            let converted = PatternReference.verticalSlashIndex(verticals: index.verticals.map(Int.init),
                                                                slashOffsets: index.slashOffsets.map(Int.init), length: n)
            let device = VerticalSlashIndex(blockCount: index.blockCount, blockOffset: index.blockOffset, columnCount: index.columnCount,
                                            columnIndex: index.columnIndex, rowBlocks: index.rowBlocks, nnzS: index.nnzS, nnzV: index.nnzV)
            #expect(device.firstDifference(from: converted) == nil, "head \(index.head): \(device.firstDifference(from: converted) ?? "")")
            covered[index.head] = { PatternReference.coveredKeys(index: converted, query: $0) }
        }
        for index in report.indices.blockSparse {
            guard case .blockSparse(let blocks) = plan.heads[index.head % problem.headsQ] else { Issue.record("wrong head kind"); continue }
            let expected = PatternReference.blockSparseSelection(reference: reference, head: index.head, blocks: blocks)
            let scores = PatternReference.blockScores(reference: reference, head: index.head)
            let selected = index.selected.map { $0.map(Int.init) }
            #expect(selected.count == expected.count, "head \(index.head): \(selected.count) query blocks, reference \(expected.count)")
            for (m, (got, want)) in zip(selected, expected).enumerated() {
                #expect(agreeUpToTies(got, want, scores: Array(scores[m].prefix(m + 1))),
                        "head \(index.head) query block \(m): \(Self.difference(got, want))")
            }
            covered[index.head] = { PatternReference.coveredKeys(blockSelection: selected, query: $0, length: n) }
        }
        for head in 0..<(problem.batch * problem.headsQ) where covered[head] == nil {
            switch plan.heads[head % problem.headsQ] {
            case .aShape(let sink, let window): covered[head] = { PatternReference.coveredKeys(aShapeSink: sink, window: window, query: $0) }
            case .dense: covered[head] = { Array(0...$0) }
            default: Issue.record("head \(head): no indices were collected")
            }
        }
        let metrics = compare(output: output, reference: reference, rows: sampledRows(problem: problem, limit: 160)) { head, query in
            covered[head]?(query)
        }
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem.outputDType), "\(problem) \(plan): \(metrics)")
    }

    /// Equal sets, or sets that differ only in entries whose scores tie (within float32 noise)
    /// with the k-th largest score.
    func agreeUpToTies(_ got: [Int], _ want: [Int], scores: [Double]) -> Bool {
        guard got.count == want.count else { return false }
        let a = Set(got), b = Set(want)
        if a == b { return true }
        let threshold = want.map { scores[$0] }.min() ?? 0
        let scale = max(1e-12, scores.filter(\.isFinite).map(abs).max() ?? 1)
        return a.symmetricDifference(b).allSatisfy { abs(scores[$0] - threshold) <= 1e-5 * scale }
    }

    static func difference(_ got: [Int], _ want: [Int]) -> String {
        let a = Set(got), b = Set(want)
        return "device-only \(a.subtracting(b).sorted().prefix(8)), reference-only \(b.subtracting(a).sorted().prefix(8))"
    }
}
