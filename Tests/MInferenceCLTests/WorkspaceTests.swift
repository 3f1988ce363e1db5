@testable import MInferenceCL
import Testing

/// A workspace makes repeated layer calls allocate nothing after the first, without changing a bit
/// of their results.
@Suite("Workspace")
struct WorkspaceTests {
    static let plan = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2),
                                        .verticalSlash(vertical: 40, slash: 80), .blockSparse(blocks: 3)])

    func layer(_ engine: AttentionEngine, n: Int, seed: UInt64, estimation: DeviceProfile.EstimationBackend,
               workspace: Workspace?) throws -> (Tensor, LayerResult) {
        let context = engine.context
        let problem = try AttentionProblem(headsQ: 6, headsKV: 3, queryLength: n, keyLength: n, headDim: 64, inputDType: .f16)
        let (q, k, v) = problem.normalInputs(seed: seed)
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f16)
        let report = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: Self.plan,
                                    options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: estimation),
                                    workspace: workspace)
        return (try out.download(), report)
    }

    @Test(arguments: [DeviceProfile.EstimationBackend.fused, .clblast])
    func repeatedCallsAllocateNothing(_ estimation: DeviceProfile.EstimationBackend) throws {
        let engine = AttentionEngine(context: try ComputeContext(device: TestDevice.engine().context.device))
        let context = engine.context
        let workspace = Workspace(context: context)
        // The largest call first, then smaller and equal ones: inputs and outputs are the caller's.
        let (first, _) = try layer(engine, n: 700, seed: 1, estimation: estimation, workspace: workspace)
        let held = workspace.byteCount
        #expect(held > 0)
        for (n, seed) in [(700, 2), (300, 3), (700, 1)] as [(Int, UInt64)] {
            let problem = try AttentionProblem(headsQ: 6, headsKV: 3, queryLength: n, keyLength: n, headDim: 64, inputDType: .f16)
            let (q, k, v) = problem.normalInputs(seed: seed)
            let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
            let dv = try DeviceTensor(context: context, copying: v)
            let out = try DeviceTensor(context: context, shape: problem.queryShape, dtype: .f16)
            let before = context.allocationCount
            _ = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: Self.plan,
                               options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: estimation),
                               workspace: workspace)
            #expect(context.allocationCount == before, "N \(n): \(context.allocationCount - before) allocations with a workspace")
            if n == 700, seed == 1 { #expect(try out.download() == first, "the same call gives the same bits") }
        }
        #expect(workspace.byteCount == held)
        // Without a workspace a call allocates its own buffers, and gives the same output.
        let before = context.allocationCount
        let (fresh, _) = try layer(engine, n: 700, seed: 1, estimation: estimation, workspace: nil)
        #expect(context.allocationCount - before > 4 + 10)
        #expect(fresh == first)
    }

    @Test func aLargerCallGrowsTheWorkspaceAndStaysRight() throws {
        let engine = try TestDevice.engine()
        let workspace = Workspace(context: engine.context)
        _ = try layer(engine, n: 200, seed: 4, estimation: .fused, workspace: workspace)
        let small = workspace.byteCount
        let (output, report) = try layer(engine, n: 777, seed: 5, estimation: .fused, workspace: workspace)
        #expect(workspace.byteCount > small)
        let problem = report.problem
        let (q, k, v) = problem.normalInputs(seed: 5)
        let verification = LayerVerification(reference: ReferenceAttention(problem: problem, q: q, k: k, v: v), plan: Self.plan,
                                             output: output, report: report, rows: sampledRows(problem: problem, limit: 96))
        #expect(verification.passed, "\(verification.problems)")
    }

    @Test func refusesAnotherContextAndConcurrentUse() throws {
        let engine = try TestDevice.engine()
        let other = Workspace(context: try ComputeContext(device: engine.context.device))
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 64, keyLength: 64, headDim: 64, inputDType: .f32)
        let (q, k, v) = problem.normalInputs(seed: 6)
        let dq = try DeviceTensor(context: engine.context, copying: q), dk = try DeviceTensor(context: engine.context, copying: k)
        let dv = try DeviceTensor(context: engine.context, copying: v)
        let out = try DeviceTensor(context: engine.context, shape: problem.queryShape, dtype: .f32)
        #expect(throws: AttentionError.invalidArgument("the workspace belongs to another context than the engine's")) {
            try engine.dense(problem: problem, q: dq, k: dk, v: dv, output: out, workspace: other)
        }
        let workspace = Workspace(context: engine.context)
        #expect(throws: AttentionError.invalidArgument("the workspace is in use by another call; give each thread its own")) {
            try workspace.serving(engine) { try engine.dense(problem: problem, q: dq, k: dk, v: dv, output: out, workspace: workspace) }
        }
        let before = engine.context.allocationCount
        _ = try engine.dense(problem: problem, q: dq, k: dk, v: dv, output: out, workspace: workspace)
        _ = try engine.dense(problem: problem, q: dq, k: dk, v: dv, output: out, workspace: workspace)
        #expect(engine.context.allocationCount == before + 3, "the head list, the key flags and the non-finite count, once")
    }
}
