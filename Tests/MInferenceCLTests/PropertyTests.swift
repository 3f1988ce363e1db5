import MInferenceCL
import Testing

/// Properties over random shapes and patterns, from fixed seeds (each case's seed is its
/// argument, so a failure names the case to rerun):
/// - a layer of sparse patterns whose budgets cover every causal key equals dense attention;
/// - permuting KV heads (and query heads within their groups) permutes the outputs exactly;
/// - finite inputs give finite outputs, at tiny lengths, with rows that see no key, and with
///   large-magnitude inputs.
/// Head dims and dtypes are drawn from those the other suites build programs for, so the
/// shared engine does not compile new programs for them.
@Suite("Properties over random shapes and patterns")
struct PropertyTests {
    static let variants: [(headDim: Int, dtype: DType)] = [(64, .f32), (64, .f16), (128, .f16)]

    /// A random layer shape.
    static func shape(_ random: inout SeededRandom, maxLength: Int = 260) throws -> AttentionProblem {
        let (d, dtype) = variants[Int.random(in: 0..<variants.count, using: &random)]
        let kv = Int.random(in: 1...3, using: &random), group = Int.random(in: 1...3, using: &random)
        let n = [1, 2, 3, 63, 64, 65, 127, 129].randomElement(using: &random)! + (Bool.random(using: &random) ? Int.random(in: 0...maxLength, using: &random) : 0)
        return try AttentionProblem(batch: Int.random(in: 1...2, using: &random), headsQ: kv * group, headsKV: kv, queryLength: n, keyLength: n,
                                    headDim: d, inputDType: dtype)
    }

    /// A random pattern; `covering` makes its budgets cover every causal key at length `n`.
    static func pattern(_ random: inout SeededRandom, n: Int, covering: Bool) -> HeadPattern {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return .dense
        case 1:
            return covering ? .aShape(sink: Int.random(in: 1...(n + 10), using: &random), window: n + Int.random(in: 0...1000, using: &random))
                : .aShape(sink: Int.random(in: 1...16, using: &random), window: Int.random(in: 1...80, using: &random))
        case 2:
            return covering ? .verticalSlash(vertical: n + Int.random(in: 0...100, using: &random), slash: n + Int.random(in: 0...100, using: &random))
                : .verticalSlash(vertical: Int.random(in: 1...90, using: &random), slash: Int.random(in: 1...120, using: &random))
        default:
            return covering ? .blockSparse(blocks: n / 64 + 1 + Int.random(in: 0...5, using: &random))
                : .blockSparse(blocks: Int.random(in: 1...3, using: &random))
        }
    }

    static func inputs(_ problem: AttentionProblem, _ random: inout SeededRandom, scale: Float = 1) throws -> (q: Tensor, k: Tensor, v: Tensor) {
        (try Tensor(shape: problem.queryShape, dtype: problem.inputDType, values: random.normals(problem.queryShape.reduce(1, *), scale: scale)),
         try Tensor(shape: problem.keyShape, dtype: problem.inputDType, values: random.normals(problem.keyShape.reduce(1, *), scale: scale)),
         try Tensor(shape: problem.keyShape, dtype: problem.inputDType, values: random.normals(problem.keyShape.reduce(1, *))))
    }

    @Test("Sparse patterns with covering budgets equal dense", arguments: 1...10)
    func coveringEqualsDense(seed: Int) throws {
        let engine = try TestDevice.engine()
        var random = SeededRandom(seed: UInt64(1000 + seed))
        let problem = try Self.shape(&random)
        let plan = LayerPlan(heads: (0..<problem.headsQ).map { _ in Self.pattern(&random, n: problem.queryLength, covering: true) })
        let (q, k, v) = try Self.inputs(problem, &random)
        let estimation: DeviceProfile.EstimationBackend = Bool.random(using: &random) ? .fused : .clblast
        let (output, report) = try engine.run(q: q, k: k, v: v, plan: plan, options: SparseOptions(denseFallback: .never, estimation: estimation))
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let metrics = compare(output: output, reference: reference, rows: sampledRows(problem: problem, limit: 128, seed: UInt64(seed)))
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem), "\(problem) \(plan) \(estimation): \(metrics)")
        for h in 0..<problem.headsQ {
            #expect(abs(report.density(head: h) - 1) < 1e-12, "head \(h) (\(plan.heads[h])) covered \(report.density(head: h)) of \(problem)")
        }
    }

    @Test("Permuting heads permutes the outputs exactly", arguments: 1...6)
    func headPermutation(seed: Int) throws {
        let engine = try TestDevice.engine()
        var random = SeededRandom(seed: UInt64(2000 + seed))
        let problem = try Self.shape(&random, maxLength: 400)
        let n = problem.queryLength, d = problem.headDim, group = problem.groupSize
        let plan = LayerPlan(heads: (0..<problem.headsQ).map { _ in Self.pattern(&random, n: n, covering: false) })
        let (q, k, v) = try Self.inputs(problem, &random)
        // KV head g moves to kvOrder[g]; query head g * group + i moves to kvOrder[g] * group + within[g][i].
        let kvOrder = Array(0..<problem.headsKV).shuffled(using: &random)
        let within = (0..<problem.headsKV).map { _ in Array(0..<group).shuffled(using: &random) }
        func newHead(_ h: Int) -> Int { kvOrder[h / group] * group + within[h / group][h % group] }
        func permute(_ t: Tensor, heads: Int, to place: (Int) -> Int) throws -> Tensor {
            let row = n * d * t.dtype.byteCount
            var bytes = t.bytes
            for b in 0..<problem.batch {
                for h in 0..<heads {
                    let from = (b * heads + h) * row, to = (b * heads + place(h)) * row
                    bytes.replaceSubrange(to..<(to + row), with: t.bytes[from..<(from + row)])
                }
            }
            return try Tensor(shape: t.shape, dtype: t.dtype, bytes: bytes)
        }
        var permutedHeads = plan.heads
        for h in 0..<problem.headsQ { permutedHeads[newHead(h)] = plan.heads[h] }
        let estimation: DeviceProfile.EstimationBackend = Bool.random(using: &random) ? .fused : .clblast
        let options = SparseOptions(denseFallback: .never, estimation: estimation)
        let original = try engine.run(q: q, k: k, v: v, plan: plan, options: options)
        let permuted = try engine.run(q: try permute(q, heads: problem.headsQ, to: newHead), k: try permute(k, heads: problem.headsKV) { kvOrder[$0] },
                                      v: try permute(v, heads: problem.headsKV) { kvOrder[$0] }, plan: LayerPlan(heads: permutedHeads), options: options)
        let expected = try permute(original.output, heads: problem.headsQ, to: newHead)
        #expect(permuted.output == expected,
                "\(problem) \(plan) \(estimation), kv order \(kvOrder), within groups \(within)")
        for h in 0..<problem.headsQ { #expect(permuted.report.coveredPairs[newHead(h)] == original.report.coveredPairs[h]) }
    }

    @Test("Finite inputs give finite outputs: tiny lengths, masked rows, large magnitudes", arguments: 1...12)
    func finiteOutputs(seed: Int) throws {
        let engine = try TestDevice.engine()
        var random = SeededRandom(seed: UInt64(3000 + seed))
        let base = try Self.shape(&random, maxLength: 8)
        // Large magnitudes: logits in the thousands (f16 inputs up to ~600, f32 up to 1e15 with
        // scaled dot products far below fp32's range).
        let magnitude: Float = switch seed % 3 { case 0: 1; case 1: base.inputDType == .f16 ? 100 : 1e15; default: 30 }
        if seed % 4 == 0 {
            // Dense with more queries than keys: the first rows see no key and must be 0.
            let keys = max(1, base.queryLength / 3)
            let problem = try AttentionProblem(batch: base.batch, headsQ: base.headsQ, headsKV: base.headsKV, queryLength: base.queryLength + 5,
                                               keyLength: keys, headDim: base.headDim, inputDType: base.inputDType)
            let (q, k, v) = try Self.inputs(problem, &random, scale: magnitude)
            let output = try engine.dense(q: q, k: k, v: v).output
            #expect(output.floats().allSatisfy { $0.isFinite }, "\(problem) x\(magnitude)")
            let masked = problem.queryLength - problem.keyLength
            let values = output.floats()
            #expect(values[0..<(masked * problem.headDim)].allSatisfy { $0 == 0 }, "\(problem): rows that see no key are not 0")
        } else {
            let plan = LayerPlan(heads: (0..<base.headsQ).map { _ in Self.pattern(&random, n: base.queryLength, covering: false) })
            let (q, k, v) = try Self.inputs(base, &random, scale: magnitude)
            let (output, _) = try engine.run(q: q, k: k, v: v, plan: plan, options: SparseOptions(denseFallback: .never, estimation: .fused))
            #expect(output.floats().allSatisfy { $0.isFinite }, "\(base) \(plan) x\(magnitude)")
        }
    }
}

