@testable import MInferenceCL
import Testing

/// Chunked prefill (Nq < Nk, queries at the end) for every pattern, and packed variable-length
/// batches: a chunk's rows against the whole-prompt run and the float64 reference, a packed batch
/// against separate calls.
@Suite("Chunked prefill and variable-length batches")
struct ChunkedPrefillTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        /// Chunk boundaries of a 333-token prompt.
        var boundaries: [Int]
        var dtype: DType
        var testDescription: String { "\(pattern) \(dtype) chunks at \(boundaries)" }
    }

    /// Boundaries where each pattern's chunk rows are the whole prompt's: A-shape anywhere,
    /// vertical-slash with chunks of at least 64 queries, block-sparse at multiples of 64.
    static let defined: [Case] = [
        Case(pattern: .aShape(sink: 8, window: 100), boundaries: [0, 100, 211, 333], dtype: .f16),
        Case(pattern: .aShape(sink: 70, window: 64), boundaries: [0, 150, 333], dtype: .bf16),
        Case(pattern: .verticalSlash(vertical: 30, slash: 60), boundaries: [0, 128, 213, 333], dtype: .f16),
        Case(pattern: .verticalSlash(vertical: 40, slash: 100), boundaries: [0, 250, 333], dtype: .f32),
        Case(pattern: .blockSparse(blocks: 2), boundaries: [0, 128, 256, 333], dtype: .f16),
        Case(pattern: .blockSparse(blocks: 3), boundaries: [0, 64, 333], dtype: .bf16),
    ]

    static let problemHeads = (q: 4, kv: 2)

    func problem(_ nq: Int, _ nk: Int, _ dtype: DType) throws -> AttentionProblem {
        try AttentionProblem(headsQ: Self.problemHeads.q, headsKV: Self.problemHeads.kv, queryLength: nq, keyLength: nk, headDim: 64,
                             inputDType: dtype)
    }

    @Test(arguments: defined)
    func chunkRowsEqualWholePromptRows(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let full = try problem(333, 333, c.dtype)
        let (q, k, v) = full.normalInputs(seed: 17)
        let plan = LayerPlan.uniform(c.pattern, heads: full.headsQ)
        for (start, end) in zip(c.boundaries, c.boundaries.dropFirst()) {
            let (metrics, problems) = try EngineAPIChecks.chunkAgainstWholePrompt(
                engine: engine, q: q.tokens(0..<end), k: k.tokens(0..<end), v: v.tokens(0..<end), plan: plan, start: start)
            #expect(problems.isEmpty, "chunk \(start)..<\(end): \(problems.joined(separator: "; "))")
            #expect(metrics.count > 0)
        }
    }

    /// The views the kernels read in FlashAttention's layout give the contiguous path's bits.
    @Test(arguments: [DType.f16, .bf16, .f32])
    func tokenMajorViewsEqualContiguous(_ dtype: DType) throws {
        let problem = try AttentionProblem(batch: 2, headsQ: 4, headsKV: 2, queryLength: 333, keyLength: 333, headDim: 64, inputDType: dtype)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2)])
        let problems = try EngineAPIChecks.tokenMajorAgainstContiguous(engine: try TestDevice.engine(), problem: problem, plan: plan, seed: 3)
        #expect(problems.isEmpty, "\(problems)")
    }

    /// Where the whole prompt's estimate is out of reach (vertical-slash with Nq < 64, block-sparse
    /// chunks that do not start at a multiple of 64), the estimate reads the chunk's own queries: the
    /// output is exact attention over the keys the chunk's own index lists give.
    @Test(arguments: [(HeadPattern.verticalSlash(vertical: 30, slash: 60), 293), (.verticalSlash(vertical: 30, slash: 60), 300),
                      (.blockSparse(blocks: 2), 200), (.blockSparse(blocks: 1), 330)])
    func chunksThatEstimateFromTheirOwnQueries(_ pattern: HeadPattern, _ start: Int) throws {
        let engine = try TestDevice.engine()
        let nk = 333
        let full = try problem(nk, nk, .f16)
        let (q, k, v) = full.normalInputs(seed: 23)
        let chunkProblem = try problem(nk - start, nk, .f16)
        let plan = LayerPlan.uniform(pattern, heads: full.headsQ)
        let (chunk, report) = try engine.run(q: q.tokens(start..<nk), k: k, v: v, plan: plan,
                                             options: SparseOptions(denseFallback: .never, collectIndices: true))
        let reference = ReferenceAttention(problem: full, q: q, k: k, v: v)
        var keysOf: [Int: (Int) -> [Int]] = [:]
        for index in report.indices.verticalSlash {
            let converted = PatternReference.verticalSlashIndex(verticals: index.verticals.map(Int.init),
                                                                slashOffsets: index.slashOffsets.map(Int.init), length: nk)
            keysOf[index.head] = { PatternReference.coveredKeys(index: converted, query: $0) }
        }
        for index in report.indices.blockSparse {
            #expect(index.firstQueryBlock == start / 64)
            let selection = Array(repeating: [Int](), count: index.firstQueryBlock) + index.selected.map { $0.map(Int.init) }
            keysOf[index.head] = { PatternReference.coveredKeys(blockSelection: selection, query: $0, length: nk) }
        }
        var metrics = ErrorMetrics()
        let values = chunk.floats(), d = full.headDim, nq = chunkProblem.queryLength
        for head in 0..<full.headsQ {
            let keys = try #require(keysOf[head])
            var pairs = 0
            for i in 0..<nq {
                let covered = keys(start + i)
                #expect(covered.allSatisfy { $0 <= start + i }, "a key after the query")
                pairs += covered.count
                let base = (head * nq + i) * d
                metrics.add(output: values[base..<(base + d)], reference: reference.output(head: head, query: start + i, keys: covered))
            }
            #expect(report.coveredPairs[head] == pairs)
        }
        #expect(metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(chunkProblem), "\(metrics)")
    }

    /// A decode step (one query against the cache) runs dense for every pattern.
    @Test func decodeStepRunsDense() throws {
        let engine = try TestDevice.engine()
        let full = try problem(333, 333, .f16)
        let (q, k, v) = full.normalInputs(seed: 29)
        let plan = LayerPlan(heads: [.aShape(sink: 4, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 1), .dense])
        let (step, report) = try engine.run(q: q.tokens(332..<333), k: k, v: v, plan: plan, options: SparseOptions(denseFallback: .never))
        #expect(report.executed == Array(repeating: .dense, count: 4))
        let (dense, _) = try engine.run(q: q.tokens(332..<333), k: k, v: v, plan: .uniform(.dense, heads: 4))
        #expect(step == dense)
    }

    /// Sequences packed along N in FlashAttention's `[total, H, d]` order give, bit for bit, the
    /// outputs of separate calls: prefill sequences, and chunks of prefills (per-sequence Nq < Nk).
    @Test(arguments: [([0, 130, 207, 407], [0, 130, 207, 407]), ([0, 100, 164, 164, 264], [0, 300, 400, 450, 750])])
    func packedBatchEqualsSeparateCalls(_ cuQ: [Int], _ cuK: [Int]) throws {
        // A context of its own: its allocation count is this test's alone.
        let engine = AttentionEngine(context: try ComputeContext(device: TestDevice.engine().context.device))
        let context = engine.context
        let (hq, hkv, d) = (4, 2, 64)
        let batch = try VariableLengthBatch(cuSeqlensQ: cuQ, cuSeqlensK: cuK, headsQ: hq, headsKV: hkv, headDim: d, inputDType: .f16)
        let plan = LayerPlan(heads: [.dense, .aShape(sink: 8, window: 64), .verticalSlash(vertical: 30, slash: 60), .blockSparse(blocks: 2)])
        let options = SparseOptions(denseFallback: .never, collectIndices: true)
        // Each sequence's own inputs, and the packed token-major buffers they make.
        var sequences: [(q: Tensor, k: Tensor, v: Tensor)] = []
        var packedQ: [UInt8] = [], packedK: [UInt8] = [], packedV: [UInt8] = []
        for s in 0..<batch.sequenceCount {
            let p = try AttentionProblem(headsQ: hq, headsKV: hkv, queryLength: max(1, batch.queryLength(s)), keyLength: batch.keyLength(s),
                                         headDim: d, inputDType: .f16)
            var (q, k, v) = p.normalInputs(seed: 40 + UInt64(s))
            if batch.queryLength(s) == 0 { q = try Tensor(shape: [1, hq, 0, d], dtype: .f16, bytes: []) }
            sequences.append((q, k, v))
            packedQ += q.tokenMajorBytes()
            packedK += k.tokenMajorBytes()
            packedV += v.tokenMajorBytes()
        }
        func packed(_ bytes: [UInt8], heads: Int, total: Int) throws -> DeviceTensor {
            let buffer = try DeviceBuffer(context: context, byteCount: max(bytes.count, 2), label: "packed")
            try bytes.withUnsafeBytes { try buffer.write($0) }
            return try DeviceTensor(buffer: buffer, dtype: .f16, shape: [heads, total, d],
                                    strides: DeviceTensor.tokenMajorStrides([heads, total, d]))
        }
        let q = try packed(packedQ, heads: hq, total: batch.totalQueries)
        let k = try packed(packedK, heads: hkv, total: batch.totalKeys)
        let v = try packed(packedV, heads: hkv, total: batch.totalKeys)
        let output = try packed([UInt8](repeating: 0xFF, count: packedQ.count), heads: hq, total: batch.totalQueries)
        let workspace = Workspace(context: context)
        let reports = try engine.run(batch: batch, q: q, k: k, v: v, output: output, plan: plan, options: options, workspace: workspace)
        let all = try output.download()
        for s in 0..<batch.sequenceCount {
            let nq = batch.queryLength(s)
            guard nq > 0 else {
                #expect(reports[s] == nil)
                continue
            }
            let (expected, report) = try engine.run(q: sequences[s].q, k: sequences[s].k, v: sequences[s].v, plan: plan, options: options)
            let got = try all.reshaped([1, hq, batch.totalQueries, d]).tokens(batch.cuSeqlensQ[s]..<batch.cuSeqlensQ[s + 1])
            #expect(got == expected, "sequence \(s) (Nq \(nq), Nk \(batch.keyLength(s)))")
            #expect(reports[s]?.coveredPairs == report.coveredPairs)
        }
        // enqueue: the same bits, and nothing allocated with the workspace after the first call.
        let before = context.allocationCount
        try output.poison()
        try engine.enqueue(batch: batch, q: q, k: k, v: v, output: output, plan: plan, options: options, workspace: workspace).wait()
        #expect(context.allocationCount == before)
        #expect(try output.download() == all)
    }

    @Test func badBatches() throws {
        #expect(throws: AttentionError.shape("cu_seqlens_q decreases at sequence 1: 130 then 120")) {
            try VariableLengthBatch(cuSeqlensQ: [0, 130, 120], headsQ: 2, headsKV: 1, headDim: 64, inputDType: .f16)
        }
        #expect(throws: AttentionError.shape("cu_seqlens_q must start at 0 and hold at least one sequence ([0, n0, ...]); got [5, 10]")) {
            try VariableLengthBatch(cuSeqlensQ: [5, 10], headsQ: 2, headsKV: 1, headDim: 64, inputDType: .f16)
        }
        #expect(throws: AttentionError.shape("sequence 1 has 10 queries and no keys")) {
            try VariableLengthBatch(cuSeqlensQ: [0, 10, 20], cuSeqlensK: [0, 10, 10], headsQ: 2, headsKV: 1, headDim: 64, inputDType: .f16)
        }
        let engine = try TestDevice.engine()
        let batch = try VariableLengthBatch(cuSeqlensQ: [0, 10, 20], cuSeqlensK: [0, 10, 19], headsQ: 2, headsKV: 1, headDim: 64,
                                            inputDType: .f16)
        let q = try DeviceTensor(context: engine.context, shape: [2, 20, 64], dtype: .f16)
        let kv = try DeviceTensor(context: engine.context, shape: [1, 19, 64], dtype: .f16)
        let out = try DeviceTensor(context: engine.context, shape: [2, 20, 64], dtype: .f16)
        #expect(throws: AttentionError.unsupported("sequence 1: head 0: a-shape needs Nq <= Nk (a prefill or a chunk of one, queries at the end); got Nq 10, Nk 9")) {
            try engine.run(batch: batch, q: q, k: kv, v: kv, output: out, plan: .uniform(.aShape(sink: 4, window: 8), heads: 2))
        }
        #expect(throws: AttentionError.shape("packed k has shape [2, 20, 64]; the batch needs [1, 19, 64] ([H, total tokens, d])")) {
            try engine.run(batch: batch, q: q, k: q, v: kv, output: out, plan: .uniform(.dense, heads: 2))
        }
    }
}
