import MInferenceCL
import Testing

/// Sparse patterns whose budgets cover every causal key compute dense attention.
@Suite("Sparse patterns with full budgets")
struct SparseCoverAllTests {
    static let lengths = [1, 2, 63, 65, 200]

    @Test(arguments: lengths, [HeadPattern.Kind.aShape, .verticalSlash, .blockSparse, .triShape, .xAttention])
    func equalsDense(n: Int, kind: HeadPattern.Kind) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 9, headsKV: 3, queryLength: n, keyLength: n, headDim: 64, inputDType: .f32)
        let pattern: HeadPattern = switch kind {
        case .aShape: .aShape(sink: 1, window: n)
        case .verticalSlash: .verticalSlash(vertical: n, slash: n)
        case .blockSparse: .blockSparse(blocks: n)
        case .triShape: .triShape(sink: 1, window: 1, last: n)
        // threshold 1 takes every block of positive estimated mass: all causal ones here
        case .xAttention: .xAttention(XAttentionParameters(threshold: 1, stride: 4, blockSize: 64))
        // (FlexPrefill runs dense below 2 blocks, and above it never covers all: tested elsewhere)
        case .dense, .flexPrefill: .dense
        }
        let inputs = try RandomInputs(problem: problem, seed: UInt64(n * 13 + HeadPattern.Kind.allCases.firstIndex(of: kind)!))
        let (output, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: .uniform(pattern, heads: 9),
                                              options: SparseOptions(denseFallback: .never))
        #expect(report.executed.allSatisfy { $0.kind == kind })
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let metrics = compare(output: output, reference: reference, rows: sampledRows(problem: problem))
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(.f32), "\(kind) N=\(n): \(metrics)")
        for h in 0..<9 { #expect(abs(report.density(head: h) - 1) < 1e-12, "head \(h) density \(report.density(head: h))") }
    }
}
