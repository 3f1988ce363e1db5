@testable import MInferenceCL
import Testing

/// Tri-shape, XAttention and FlexPrefill (docs/PREFILL-METHODS.md) on the device against the
/// float64 reference: outputs equal masked float64 attention over the keys each head covered.
@Suite("Upstream's other prefill methods against the float64 reference")
struct PrefillMethodTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var headsQ: Int
        var headsKV: Int
        var length: Int
        var headDim: Int
        var dtype: DType

        var testDescription: String { "\(pattern) Hq\(headsQ)/Hkv\(headsKV) N\(length) d\(headDim) \(dtype)" }
    }

    static let cases: [Case] = [
        Case(pattern: .triShape(sink: 4, window: 40, last: 30), headsQ: 4, headsKV: 2, length: 333, headDim: 64, dtype: .f32),
        Case(pattern: .triShape(sink: 16, window: 64, last: 500), headsQ: 2, headsKV: 1, length: 200, headDim: 64, dtype: .f16),
        Case(pattern: .triShape(sink: 8, window: 8, last: 0), headsQ: 2, headsKV: 2, length: 129, headDim: 128, dtype: .bf16),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.9, stride: 8, blockSize: 128)), headsQ: 4, headsKV: 2,
             length: 1000, headDim: 64, dtype: .f32),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.5, stride: 4, blockSize: 64, chunkSize: 256)), headsQ: 2,
             headsKV: 1, length: 777, headDim: 64, dtype: .f16),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1)), headsQ: 4, headsKV: 2, length: 1000, headDim: 64,
             dtype: .f32),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.95, tau: 0.5, minBudget: 200, maxBudget: 400, blockSize: 64)),
             headsQ: 2, headsKV: 1, length: 901, headDim: 64, dtype: .bf16),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.length, keyLength: c.length,
                                           headDim: c.headDim, inputDType: c.dtype)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(c.length * 17 + c.headsQ))
        let check = try SparseCheck(engine: engine, problem: problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                    plan: .uniform(c.pattern, heads: c.headsQ), estimation: .fused)
        try check.verify()
    }
}
