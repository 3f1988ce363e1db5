@testable import MInferenceCL
import Testing

/// NaN and infinities in q, k and v (docs/NON-FINITE.md section 1): a row that reads one (its q
/// row, or the k or v row of a key it covers) is NaN in every channel, never 0; every other row is
/// the float64 reference's, and with a static key set (dense, A-shape, Tri-shape) bit for bit the
/// row of the same run without the planted values.
@Suite("Non-finite inputs in the attention kernels")
struct NonFiniteAttentionTests {
    @Test(arguments: [
        ("dense", HeadPattern.dense, DType.f32, 333),
        ("A-shape", .aShape(sink: 16, window: 48), .f16, 333),
        ("vertical-slash", .verticalSlash(vertical: 40, slash: 96), .bf16, 333),
        ("block-sparse", .blockSparse(blocks: 3), .f16, 333),
        ("Tri-shape", .triShape(sink: 8, window: 64, last: 64), .f32, 333),
        ("XAttention", .xAttention(XAttentionParameters(blockSize: 64)), .bf16, 901),
        ("FlexPrefill", .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1, blockSize: 64)), .f16, 901),
        ("dense, tiny", .dense, .bf16, 3),
    ])
    func rowsThatReadANonFiniteValueAreNaN(_ c: (String, HeadPattern, DType, Int)) throws {
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.3, keyLength: c.3, headDim: 64, inputDType: c.2)
        let outcome = try NonFiniteCheck.check(engine: try TestDevice.engine(), problem: problem, plan: .uniform(c.1, heads: 4),
                                               count: c.3 < 8 ? 2 : 7, seed: 41)
        #expect(outcome.problems.isEmpty, "\(c.0): \(outcome.problems.joined(separator: "; "))")
    }

    @Test("A chunk (Nq < Nk): keys beyond a row's causal edge or outside its A-shape window do not reach it",
          arguments: [(HeadPattern.dense, DType.f16), (.aShape(sink: 8, window: 40), .bf16), (.dense, .f32)])
    func chunkedRows(_ c: (HeadPattern, DType)) throws {
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 176, keyLength: 304, headDim: 64, inputDType: c.1)
        let outcome = try NonFiniteCheck.check(engine: try TestDevice.engine(), problem: problem, plan: .uniform(c.0, heads: 4),
                                               count: 6, seed: 9, tensors: ["k", "v"])
        #expect(outcome.problems.isEmpty, "\(c): \(outcome.problems.joined(separator: "; "))")
    }

    @Test("The issue's cases: a NaN in a query row, and a NaN in the key the last causal row alone reads")
    func issueCases() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 1, headsKV: 1, queryLength: 256, keyLength: 256, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 3)
        var q = inputs.q.floats(), k = inputs.k.floats()
        q[10 * 64 + 5] = .nan   // row 10's own query
        k[192 * 64 + 1] = .nan  // key 192: rows 192... read it, rows ...191 do not
        let (output, _) = try engine.run(q: try Tensor(shape: inputs.q.shape, dtype: .f32, values: q), k: try Tensor(shape: inputs.k.shape, dtype: .f32, values: k),
                                         v: inputs.v, plan: .uniform(.dense, heads: 1), options: SparseOptions(denseFallback: .never), checkFinite: false)
        let values = output.floats()
        let rowIsNaN = { (i: Int) in values[i * 64..<(i + 1) * 64].allSatisfy(\.isNaN) }
        let rowIsFinite = { (i: Int) in values[i * 64..<(i + 1) * 64].allSatisfy(\.isFinite) }
        #expect(rowIsNaN(10), "a NaN query makes its row NaN, not 0")
        #expect((192..<256).allSatisfy(rowIsNaN), "rows 192... read the NaN key (row 192 included)")
        #expect((0..<192).filter { $0 != 10 }.allSatisfy(rowIsFinite), "rows before key 192 do not read it")
    }

    @Test("CLBlast's beta-0 GEMM does not read its output: a workspace left holding NaN by one call cannot reach the next call's estimate")
    func gemmIgnoresStaleOutput() throws {
        let context = try TestDevice.engine().context
        let (m, n, k) = (70, 33, 64)
        var random = SeededRandom(seed: 4)
        let a = try DeviceBuffer(context: context, copying: random.normals(2 * m * k), label: "a")
        let b = try DeviceBuffer(context: context, copying: random.normals(n * k), label: "b")
        let c = try DeviceBuffer(context: context, byteCount: 2 * m * n * 4, label: "c")
        // Two A blocks over one B (a grouped-query run: one plain GEMM), then a strided batch.
        try c.fill(pattern: Float.nan.bitPattern, using: context)
        let grouped = try CLBlastGEMM.multiplyTransposed(context: context, m: m, n: n, k: k, a: a, aOffsets: [0, m * k], b: b,
                                                         bOffsets: [0, 0], c: c, cOffsets: [0, m * n])
        try grouped.wait()
        let plain = try c.read(as: Float.self, count: 2 * m * n)
        #expect(plain.allSatisfy { $0.isFinite }, "\(plain.filter { !$0.isFinite }.count) stale NaN outputs")
        try c.fill(pattern: Float.nan.bitPattern, using: context)
        let batched = try CLBlastGEMM.multiplyTransposed(context: context, m: m, n: n / 3, k: k, a: a, aOffsets: [0, m * k],
                                                         b: b, bOffsets: [0, (n / 3) * k], c: c, cOffsets: [0, m * n])
        try batched.wait()
        let out = try c.read(as: Float.self, count: 2 * m * n)
        let written = (0..<2).flatMap { e in (0..<(m * (n / 3))).map { e * m * n + $0 } }
        #expect(written.allSatisfy { out[$0].isFinite }, "strided batch: stale NaN reached the result")
    }

    @Test("The non-finite scan runs unless the host checked the inputs or the caller says they are finite")
    func nonFiniteScanPhase() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 70, keyLength: 70, headDim: 64, inputDType: .f16)
        let inputs = try RandomInputs(problem: problem, seed: 8)
        let plan = LayerPlan.uniform(.aShape(sink: 4, window: 16), heads: 2)
        let options = SparseOptions(denseFallback: .never)
        let checked = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options).report
        let unchecked = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options, checkFinite: false)
        #expect(checked.timing[.aShape]?.contains(.nonFiniteScan) == false)
        #expect(unchecked.report.timing[.aShape]?.contains(.nonFiniteScan) == true)
        var assumed = options
        assumed.assumeFinite = true
        let promised = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: assumed, checkFinite: false)
        #expect(promised.report.timing[.aShape]?.contains(.nonFiniteScan) == false)
        // Finite inputs: the scan and the variant that computes change nothing.
        #expect(try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options).output.bytes == unchecked.output.bytes)
        #expect(promised.output.bytes == unchecked.output.bytes)
    }
}
