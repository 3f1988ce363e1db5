@testable import MInferenceCL
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
        // more than one 64 x 64 tile of block scores (above-diagonal tiles skipped), d % 16 != 0
        Case(pattern: .blockSparse(blocks: 5), headsQ: 3, headsKV: 1, length: 4500, headDim: 72, dtype: .f16),
        // the Llama-3-8B head layout (32/8), N below every budget and N below 64
        Case(pattern: .verticalSlash(vertical: 1000, slash: 6096), headsQ: 32, headsKV: 8, length: 130, headDim: 64, dtype: .f16),
        Case(pattern: .blockSparse(blocks: 100), headsQ: 32, headsKV: 8, length: 150, headDim: 64, dtype: .bf16),
        Case(pattern: .aShape(sink: 128, window: 3968), headsQ: 32, headsKV: 8, length: 63, headDim: 64, dtype: .f16),
    ]

    @Test("The verification catches a wrong output and a wrong index")
    func verificationCanFail() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 300, keyLength: 300, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 5)
        let plan = LayerPlan.uniform(.verticalSlash(vertical: 30, slash: 60), heads: 2)
        let (output, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan,
                                              options: SparseOptions(denseFallback: .never, collectIndices: true))
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let rows = sampledRows(problem: problem, limit: 64)
        #expect(LayerVerification(reference: reference, plan: plan, output: output, report: report, rows: rows).passed)
        var damaged = output.floats()
        let (h, i) = rows[5]
        damaged[(h * 300 + i) * 64] += 0.5
        let wrongOutput = try Tensor(shape: output.shape, dtype: output.dtype, values: damaged)
        #expect(!LayerVerification(reference: reference, plan: plan, output: wrongOutput, report: report, rows: rows).passed)
        var wrongIndex = report
        wrongIndex.indices.verticalSlash[0].blockOffset[0] += 1
        #expect(!LayerVerification(reference: reference, plan: plan, output: output, report: wrongIndex, rows: rows).passed)
    }

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(batch: c.batch, headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.length,
                                           keyLength: c.length, headDim: c.headDim, inputDType: c.dtype)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(c.length * 31 + c.headsQ * 7 + c.headDim))
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
    let verification: LayerVerification
    let problem: AttentionProblem
    let plan: LayerPlan
    /// The run's report (what each head executed, its indices).
    let report: LayerResult

    init(engine: AttentionEngine, problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, plan: LayerPlan,
         estimation: DeviceProfile.EstimationBackend) throws {
        self.problem = problem
        self.plan = plan
        let context = engine.context
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: q.shape, dtype: problem.outputDType)
        try out.poison()
        let report = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan,
                                    options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: estimation))
        self.report = report
        verification = LayerVerification(reference: ReferenceAttention(problem: problem, q: q, k: k, v: v), plan: plan,
                                         output: try out.download(), report: report,
                                         rows: sampledRows(problem: problem, limit: 160))
    }

    func verify() throws {
        #expect(verification.passed, "\(problem) \(plan):\n\(verification.problems.joined(separator: "\n"))")
        #expect(verification.metrics.count > 0)
    }
}
