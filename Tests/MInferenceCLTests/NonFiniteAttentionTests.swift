@testable import MInferenceCL
import Testing

/// NaN and infinities in q, k and v (docs/NON-FINITE.md section 1): a row that reads one (its q
/// row, or the k or v row of a key it covers) is NaN in every channel, never 0; every other row is
/// the float64 reference's, and with a static key set (dense, A-shape, Tri-shape) bit for bit the
/// row of the same run without the planted values.
@Suite("Non-finite inputs in the attention kernels")
struct NonFiniteAttentionTests {
    /// `inputs` with `count` elements of `tensors` set to NaN, +Inf and -Inf, at seeded random
    /// positions: the tensors in turn, each taking the three values in turn. k and v are planted in
    /// the later half of the keys, so that many rows do not read them (and must not change).
    static func planted(_ inputs: RandomInputs, problem: AttentionProblem, count: Int, seed: UInt64,
                        tensors: [String] = ["q", "k", "v"]) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        var values = ["q": inputs.q.floats(), "k": inputs.k.floats(), "v": inputs.v.floats()]
        var random = SeededRandom(seed: seed)
        let specials: [Float] = [.nan, .infinity, -.infinity]
        let d = problem.headDim
        for n in 0..<count {
            let name = tensors[n % tensors.count]
            let index: Int
            if name == "q" {
                index = Int.random(in: 0..<values[name]!.count, using: &random)
            } else {
                let head = Int.random(in: 0..<(problem.batch * problem.headsKV), using: &random)
                let key = Int.random(in: problem.keyLength / 2..<problem.keyLength, using: &random)
                index = (head * problem.keyLength + key) * d + Int.random(in: 0..<d, using: &random)
            }
            values[name]![index] = specials[(n / tensors.count) % specials.count]
        }
        return (try Tensor(shape: inputs.q.shape, dtype: problem.inputDType, values: values["q"]!),
                try Tensor(shape: inputs.k.shape, dtype: problem.inputDType, values: values["k"]!),
                try Tensor(shape: inputs.v.shape, dtype: problem.inputDType, values: values["v"]!))
    }

    /// Every row of `output` against the float64 reference over the keys the run covered.
    static func check(output: Tensor, report: LayerResult, reference: ReferenceAttention) -> (ErrorMetrics, nanRows: Int) {
        let problem = reference.problem
        let covered = LayerVerification.coveredKeys(report: report, reference: reference)
        var metrics = ErrorMetrics()
        let values = output.floats(), d = problem.headDim, n = problem.queryLength
        var nanRows = 0
        for h in 0..<(problem.batch * problem.headsQ) {
            for i in 0..<n {
                let expected = reference.output(head: h, query: i, keys: covered[h]?(i))
                if expected.first!.isNaN { nanRows += 1 }
                metrics.add(output: values[(h * n + i) * d..<(h * n + i + 1) * d], reference: expected)
            }
        }
        return (metrics, nanRows)
    }

    @Test(arguments: [
        ("dense", HeadPattern.dense, DType.f32, 333),
        ("A-shape", .aShape(sink: 16, window: 48), .f16, 333),
        ("vertical-slash", .verticalSlash(vertical: 40, slash: 96), .bf16, 333),
        ("block-sparse", .blockSparse(blocks: 3), .f16, 333),
        ("Tri-shape", .triShape(sink: 8, window: 64, last: 64), .f32, 333),
        ("XAttention", .xAttention(XAttentionParameters(blockSize: 64)), .bf16, 901),
        ("FlexPrefill", .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1, blockSize: 64)), .f16, 901),
        ("dense, tiny", .dense, .bf16, 2),
    ])
    func rowsThatReadANonFiniteValueAreNaN(_ c: (String, HeadPattern, DType, Int)) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.3, keyLength: c.3, headDim: 64, inputDType: c.2)
        let inputs = try RandomInputs(problem: problem, seed: 41)
        let (q, k, v) = try Self.planted(inputs, problem: problem, count: c.3 < 8 ? 2 : 7, seed: 5)
        let options = SparseOptions(denseFallback: .never, collectIndices: true)
        let plan = LayerPlan.uniform(c.1, heads: problem.headsQ)
        let (output, report) = try engine.run(q: q, k: k, v: v, plan: plan, options: options, checkFinite: false)
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let (metrics, nanRows) = Self.check(output: output, report: report, reference: reference)
        let rows = problem.batch * problem.headsQ * problem.queryLength
        #expect(metrics.nonFiniteAgree && metrics.relativeL2 <= Tolerance.relativeL2(problem), "\(c.0): \(metrics)")
        // The planted values reach some rows and not others (else the case tests nothing).
        #expect(nanRows > 0 && nanRows < rows, "\(c.0): \(nanRows) of \(rows) rows expected NaN")

        // Static key sets: a row that reads no planted value keeps the clean run's bits.
        guard [.dense, .aShape, .triShape].contains(c.1.kind) else { return }
        let (clean, _) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options, checkFinite: false)
        let covered = LayerVerification.coveredKeys(report: report, reference: reference)
        let rowBytes = problem.headDim * problem.outputDType.byteCount
        var changed: [String] = []
        for h in 0..<(problem.batch * problem.headsQ) {
            for i in 0..<problem.queryLength where !reference.output(head: h, query: i, keys: covered[h]?(i)).first!.isNaN {
                let at = (h * problem.queryLength + i) * rowBytes
                if output.bytes[at..<at + rowBytes] != clean.bytes[at..<at + rowBytes] { changed.append("head \(h) row \(i)") }
            }
        }
        #expect(changed.isEmpty, "\(c.0): rows that read no planted value changed: \(changed.prefix(8))")
    }

    @Test("A chunk (Nq < Nk): keys beyond a row's causal edge or outside its A-shape window do not reach it",
          arguments: [(HeadPattern.dense, DType.f16), (.aShape(sink: 8, window: 40), .bf16), (.dense, .f32)])
    func chunkedRows(_ c: (HeadPattern, DType)) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: 176, keyLength: 304, headDim: 64, inputDType: c.1)
        let inputs = try RandomInputs(problem: problem, seed: 9)
        let (q, k, v) = try Self.planted(inputs, problem: problem, count: 6, seed: 77, tensors: ["k", "v"])
        let plan = LayerPlan.uniform(c.0, heads: problem.headsQ)
        let options = SparseOptions(denseFallback: .never)
        let output = try engine.run(q: q, k: k, v: v, plan: plan, options: options, checkFinite: false).output
        let clean = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options, checkFinite: false).output
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let values = output.floats(), d = problem.headDim, rowBytes = d * problem.outputDType.byteCount
        var metrics = ErrorMetrics()
        var bitsChanged = 0, nanRows = 0
        for h in 0..<(problem.batch * problem.headsQ) {
            for i in 0..<problem.queryLength {
                let keys = (0..<problem.keyLength).filter { MaskedKeyIndependence.attends(query: i, key: $0, problem: problem, pattern: c.0) }
                let expected = reference.output(head: h, query: i, keys: keys)
                metrics.add(output: values[(h * problem.queryLength + i) * d..<(h * problem.queryLength + i + 1) * d], reference: expected)
                let at = (h * problem.queryLength + i) * rowBytes
                if expected.first!.isNaN { nanRows += 1 } else if output.bytes[at..<at + rowBytes] != clean.bytes[at..<at + rowBytes] { bitsChanged += 1 }
            }
        }
        #expect(metrics.nonFiniteAgree && metrics.relativeL2 <= Tolerance.relativeL2(problem), "\(c): \(metrics)")
        #expect(nanRows > 0 && bitsChanged == 0, "\(c): \(nanRows) NaN rows, \(bitsChanged) rows that read no planted value changed bits")
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

    @Test("The key scan runs only when the host has not checked the inputs")
    func keyScanPhase() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 70, keyLength: 70, headDim: 64, inputDType: .f16)
        let inputs = try RandomInputs(problem: problem, seed: 8)
        let plan = LayerPlan.uniform(.aShape(sink: 4, window: 16), heads: 2)
        let options = SparseOptions(denseFallback: .never)
        let checked = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options).report
        let unchecked = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options, checkFinite: false)
        #expect(checked.timing[.aShape]?.contains(.keyScan) == false)
        #expect(unchecked.report.timing[.aShape]?.contains(.keyScan) == true)
        // Finite inputs: the scan changes nothing.
        #expect(try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan, options: options).output.bytes == unchecked.output.bytes)
    }
}
