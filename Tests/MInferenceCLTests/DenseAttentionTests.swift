import MInferenceCL
import Testing

/// Dense attention against the float64 reference on fresh random inputs, outputs poisoned first.
@Suite("Dense attention")
struct DenseAttentionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var headsQ: Int
        var headsKV: Int
        var queryLength: Int
        var keyLength: Int
        var headDim: Int
        var dtype: DType
        var causal: Bool = true
        var batch: Int = 1
        var outputDType: DType? = nil

        var testDescription: String {
            "B\(batch) Hq\(headsQ)/Hkv\(headsKV) Nq\(queryLength) Nk\(keyLength) d\(headDim) \(dtype)\(outputDType.map { "->\($0)" } ?? "") \(causal ? "causal" : "full")"
        }
    }

    static let cases: [Case] = [
        // every length class, GQA ratio and head dim at least once, each dtype
        Case(headsQ: 1, headsKV: 1, queryLength: 1, keyLength: 1, headDim: 64, dtype: .f32),
        Case(headsQ: 4, headsKV: 1, queryLength: 2, keyLength: 2, headDim: 96, dtype: .f16),
        Case(headsQ: 8, headsKV: 2, queryLength: 63, keyLength: 63, headDim: 128, dtype: .bf16),
        Case(headsQ: 9, headsKV: 3, queryLength: 64, keyLength: 64, headDim: 64, dtype: .f16),
        Case(headsQ: 9, headsKV: 3, queryLength: 65, keyLength: 65, headDim: 128, dtype: .f32),
        Case(headsQ: 4, headsKV: 1, queryLength: 127, keyLength: 127, headDim: 64, dtype: .bf16),
        Case(headsQ: 8, headsKV: 2, queryLength: 1000, keyLength: 1000, headDim: 96, dtype: .f16),
        Case(headsQ: 2, headsKV: 1, queryLength: 4099, keyLength: 4099, headDim: 128, dtype: .f16),
        // non-causal
        Case(headsQ: 4, headsKV: 1, queryLength: 65, keyLength: 65, headDim: 64, dtype: .f32, causal: false),
        Case(headsQ: 9, headsKV: 3, queryLength: 127, keyLength: 300, headDim: 128, dtype: .f16, causal: false),
        // chunked prefill: Nq < Nk, queries aligned to the end
        Case(headsQ: 8, headsKV: 2, queryLength: 63, keyLength: 1000, headDim: 64, dtype: .f16),
        Case(headsQ: 1, headsKV: 1, queryLength: 1, keyLength: 129, headDim: 128, dtype: .f32),
        // causal Nq > Nk: the first rows see no key and must be 0, not NaN
        Case(headsQ: 2, headsKV: 1, queryLength: 70, keyLength: 5, headDim: 64, dtype: .f32),
        // batch, other head dims, mixed output dtype
        Case(headsQ: 4, headsKV: 2, queryLength: 100, keyLength: 100, headDim: 64, dtype: .f16, batch: 3),
        Case(headsQ: 2, headsKV: 2, queryLength: 77, keyLength: 77, headDim: 8, dtype: .f32),
        Case(headsQ: 2, headsKV: 1, queryLength: 77, keyLength: 77, headDim: 256, dtype: .bf16),
        Case(headsQ: 2, headsKV: 1, queryLength: 90, keyLength: 90, headDim: 128, dtype: .f16, outputDType: .f32),
        Case(headsQ: 2, headsKV: 1, queryLength: 90, keyLength: 90, headDim: 40, dtype: .bf16, outputDType: .f16),
    ]

    @Test(arguments: cases)
    func matchesFloat64Reference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(batch: c.batch, headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.queryLength,
                                           keyLength: c.keyLength, headDim: c.headDim, inputDType: c.dtype,
                                           outputDType: c.outputDType, causal: c.causal)
        let seed = UInt64(c.queryLength * 7919 + c.headDim * 31 + c.headsQ)
        let inputs = try RandomInputs(problem: problem, seed: seed)
        let q = try DeviceTensor(context: engine.context, copying: inputs.q)
        let k = try DeviceTensor(context: engine.context, copying: inputs.k)
        let v = try DeviceTensor(context: engine.context, copying: inputs.v)
        let out = try DeviceTensor(context: engine.context, shape: problem.queryShape, dtype: problem.outputDType)
        try out.poison()
        _ = try engine.dense(problem: problem, q: q, k: k, v: v, output: out)
        let output = try out.download()
        #expect(allFinite(output), "unwritten or non-finite outputs for \(problem)")
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let metrics = compare(output: output, reference: reference, rows: sampledRows(problem: problem))
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem),
                "\(problem): \(metrics)")
    }

    @Test("Rows that see no key are zero")
    func fullyMaskedRowsAreZero() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 1, headsKV: 1, queryLength: 10, keyLength: 3, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 3)
        let result = try engine.dense(q: inputs.q, k: inputs.k, v: inputs.v)
        let values = result.output.floats()
        // query i sits at key position 3 - 10 + i: rows 0...6 see nothing
        #expect(values[0..<(7 * 64)].allSatisfy { $0 == 0 })
        #expect(values[(7 * 64)...].contains { $0 != 0 })
    }

    @Test("Custom scale")
    func customScale() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 33, keyLength: 33, headDim: 64, inputDType: .f32,
                                           scale: 0.37)
        let inputs = try RandomInputs(problem: problem, seed: 11)
        let result = try engine.dense(q: inputs.q, k: inputs.k, v: inputs.v, scale: 0.37)
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let metrics = compare(output: result.output, reference: reference, rows: sampledRows(problem: problem))
        #expect(metrics.relativeL2 <= Tolerance.relativeL2(.f32), "\(metrics)")
    }
}
