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
        var batch = 1
        /// The kind `report.executed` must show (nil: the pattern's own): FlexPrefill runs dense
        /// up to max(2B, its minimum budget) keys (docs/PREFILL-METHODS.md 5.2).
        var executes: HeadPattern.Kind? = nil

        var testDescription: String {
            "\(pattern) \(batch > 1 ? "B\(batch) " : "")Hq\(headsQ)/Hkv\(headsKV) N\(length) d\(headDim) \(dtype)"
                + (executes.map { " (runs \($0.rawValue))" } ?? "")
        }
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
        // The Llama-3-8B head layout (32/8) at a small N. The XAttention case reuses the f16
        // stride-4, 64-block program above; upstream's first chunk is its first 4 blocks here.
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.9, stride: 4, blockSize: 64, chunkSize: 256)), headsQ: 32,
             headsKV: 8, length: 300, headDim: 64, dtype: .f16),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.3, blockSize: 64)), headsQ: 32, headsKV: 8, length: 300,
             headDim: 64, dtype: .f16),
        // Odd lengths, N = 1 and 2 included, every dtype once per method, a batch of 2 (the
        // attention programs of the cases above: f32 128-blocks, f16 and bf16 64-blocks).
        Case(pattern: .triShape(sink: 4, window: 16, last: 10), headsQ: 4, headsKV: 2, length: 1, headDim: 64, dtype: .f32),
        Case(pattern: .triShape(sink: 1, window: 1, last: 1), headsQ: 2, headsKV: 1, length: 2, headDim: 64, dtype: .f16),
        Case(pattern: .triShape(sink: 8, window: 100, last: 3), headsQ: 2, headsKV: 1, length: 257, headDim: 128, dtype: .bf16),
        Case(pattern: .triShape(sink: 3, window: 20, last: 7), headsQ: 2, headsKV: 1, length: 129, headDim: 64, dtype: .f32, batch: 2),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.9, stride: 8, blockSize: 128)), headsQ: 4, headsKV: 2, length: 1,
             headDim: 64, dtype: .f32),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.9, stride: 8, blockSize: 128)), headsQ: 2, headsKV: 1, length: 2,
             headDim: 64, dtype: .f32),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.6, stride: 8, blockSize: 64)), headsQ: 2, headsKV: 1, length: 257,
             headDim: 64, dtype: .bf16),
        Case(pattern: .xAttention(XAttentionParameters(threshold: 0.5, stride: 8, blockSize: 128, chunkSize: 256)), headsQ: 2,
             headsKV: 1, length: 643, headDim: 64, dtype: .f32, batch: 2),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1)), headsQ: 4, headsKV: 2, length: 1, headDim: 64,
             dtype: .f32, executes: .dense),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1, blockSize: 64)), headsQ: 2, headsKV: 1, length: 2,
             headDim: 64, dtype: .f16, executes: .dense),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1)), headsQ: 2, headsKV: 1, length: 256, headDim: 64,
             dtype: .f32, executes: .dense),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1)), headsQ: 2, headsKV: 1, length: 257, headDim: 64,
             dtype: .f32),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1, minBudget: 600)), headsQ: 2, headsKV: 1, length: 500,
             headDim: 64, dtype: .f32, executes: .dense),
        Case(pattern: .flexPrefill(FlexPrefillParameters(gamma: 0.95, tau: 0.5, blockSize: 64)), headsQ: 2, headsKV: 1, length: 129,
             headDim: 64, dtype: .bf16),
    ]

    @Test(arguments: cases)
    func matchesReference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(batch: c.batch, headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.length,
                                           keyLength: c.length, headDim: c.headDim, inputDType: c.dtype)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(c.length * 17 + c.headsQ))
        let check = try SparseCheck(engine: engine, problem: problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                    plan: .uniform(c.pattern, heads: c.headsQ), estimation: .fused)
        try check.verify()
        let kind = c.executes ?? c.pattern.kind
        #expect(check.report.executed.allSatisfy { $0.kind == kind }, "executed \(check.report.executed)")
        // Every head that ran a block-list method reported its lists (one per flattened head).
        let lists = kind == .xAttention ? check.report.indices.xAttention.count
            : kind == .flexPrefill ? check.report.indices.flexPrefill.count : 0
        #expect(lists == (kind.selectsBlocks ? c.batch * c.headsQ : 0))
    }

    // MARK: The verification can fail

    /// Replaces one entry of the last query block's list by a causal block it does not hold (or
    /// drops one when the row already holds them all).
    static func damage(_ selected: inout [[Int32]]) {
        let m = selected.count - 1
        if let missing = (0...m).first(where: { !selected[m].contains(Int32($0)) }) {
            selected[m][selected[m].count / 2] = Int32(missing)
            selected[m].sort()
        } else {
            selected[m].remove(at: selected[m].count / 2)
        }
    }

    @Test("The verification catches a wrong block list")
    func verificationCatchesWrongBlockLists() throws {
        let engine = try TestDevice.engine()
        // The f32, 128-block programs of the cases above.
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 520, keyLength: 520, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: 5)
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let rows = sampledRows(problem: problem, limit: 64)
        for pattern in [HeadPattern.xAttention(XAttentionParameters(threshold: 0.9, stride: 8, blockSize: 128)),
                        .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1))] {
            let plan = LayerPlan.uniform(pattern, heads: 2)
            let (output, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: plan,
                                                  options: SparseOptions(denseFallback: .never, collectIndices: true))
            func verify(_ report: LayerResult) -> LayerVerification {
                LayerVerification(reference: reference, plan: plan, output: output, report: report, rows: rows)
            }
            let right = verify(report)
            #expect(right.passed, "\(pattern): \(right.problems)")
            var wrong = report
            if pattern.kind == .xAttention {
                try #require(report.indices.xAttention.count == 2)
                Self.damage(&wrong.indices.xAttention[0].selected)
                #expect(wrong.indices.xAttention[0].selected != report.indices.xAttention[0].selected)
            } else {
                try #require(report.indices.flexPrefill.count == 2)
                Self.damage(&wrong.indices.flexPrefill[0].blocks.selected)
                #expect(wrong.indices.flexPrefill[0].blocks.selected != report.indices.flexPrefill[0].blocks.selected)
            }
            let caught = verify(wrong)
            #expect(!caught.passed, "\(pattern): a damaged list of head 0 passed")
            #expect(caught.problems.contains { $0.hasPrefix("head 0 ") || $0.hasPrefix("head 0:") }, "\(caught.problems)")
            if pattern.kind == .flexPrefill {
                var flipped = report
                flipped.indices.flexPrefill[1].queryAware.toggle()
                #expect(!verify(flipped).passed, "a flipped query-aware choice passed")
            }
        }
    }

    // MARK: Chunked prefill

    struct ChunkCase: CustomTestStringConvertible, Sendable {
        var pattern: HeadPattern
        var length: Int
        var start: Int
        var dtype: DType
        var testDescription: String { "\(pattern) \(dtype) N\(length) chunk from \(start)" }
    }

    /// Chunks whose rows are defined to be the whole prompt's (LayerPlan.validate): XAttention
    /// from a block boundary (the second with upstream's first 256-query chunk straddled, whose
    /// lag rule depends on the absolute block), Tri-shape's last chunk, longer and shorter than
    /// its dense tail.
    static let chunkCases: [ChunkCase] = [
        ChunkCase(pattern: .xAttention(XAttentionParameters(threshold: 0.9, stride: 8, blockSize: 128)), length: 450, start: 256,
                  dtype: .f32),
        ChunkCase(pattern: .xAttention(XAttentionParameters(threshold: 0.8, stride: 8, blockSize: 128, chunkSize: 256)), length: 520,
                  start: 128, dtype: .f32),
        ChunkCase(pattern: .triShape(sink: 4, window: 40, last: 100), length: 333, start: 200, dtype: .f16),
        ChunkCase(pattern: .triShape(sink: 4, window: 40, last: 100), length: 333, start: 300, dtype: .f16),
    ]

    @Test(arguments: chunkCases)
    func chunkRowsEqualWholePromptRows(_ c: ChunkCase) throws {
        let engine = try TestDevice.engine()
        let full = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.length, keyLength: c.length, headDim: 64,
                                        inputDType: c.dtype)
        let (q, k, v) = full.normalInputs(seed: 29)
        let plan = LayerPlan.uniform(c.pattern, heads: 4)
        let (metrics, problems) = try EngineAPIChecks.chunkAgainstWholePrompt(engine: engine, q: q, k: k, v: v, plan: plan,
                                                                             start: c.start, rowStride: 3)
        #expect(problems.isEmpty, "\(problems.joined(separator: "; "))")
        #expect(metrics.count > 0)
        guard case .xAttention(let parameters) = c.pattern else { return }
        // chunkAgainstWholePrompt compares the vertical-slash and block-sparse lists only: the
        // chunk's XAttention lists must be the whole prompt's rows from the chunk's first block.
        let options = SparseOptions(denseFallback: .never, collectIndices: true)
        let (_, whole) = try engine.run(q: q, k: k, v: v, plan: plan, options: options)
        let (_, chunk) = try engine.run(q: q.tokens(c.start..<c.length), k: k, v: v, plan: plan, options: options)
        let first = c.start / parameters.blockSize
        #expect(chunk.indices.xAttention.count == 4 && whole.indices.xAttention.count == 4)
        for (got, want) in zip(chunk.indices.xAttention, whole.indices.xAttention) {
            #expect(got.firstQueryBlock == first && got.blockSize == parameters.blockSize)
            #expect(got.selected == Array(want.selected[first...]), "head \(got.head): \(got.selected) vs \(Array(want.selected[first...]))")
        }
    }

    @Test("A block-list chunk must start on a block boundary; a decode step runs dense")
    func chunkOffTheBlockBoundary() throws {
        let engine = try TestDevice.engine()
        let full = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 333, keyLength: 333, headDim: 64, inputDType: .f32)
        let (q, k, v) = full.normalInputs(seed: 31)
        let xAttention = LayerPlan.uniform(.defaultXAttention, heads: 2)
        #expect(throws: AttentionError.unsupported("head 0: xattention in a chunk needs the chunk to start on a block boundary (Nk - Nq = 100 is not a multiple of its block size 128)")) {
            try engine.run(q: q.tokens(100..<333), k: k, v: v, plan: xAttention)
        }
        // 64 is a boundary of 64-blocks, not of 128-blocks.
        let flex64 = LayerPlan(heads: [.dense, .flexPrefill(FlexPrefillParameters(blockSize: 64))])
        try flex64.validate(for: AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 269, keyLength: 333, headDim: 64, inputDType: .f32))
        #expect(throws: AttentionError.unsupported("head 1: flexprefill in a chunk needs the chunk to start on a block boundary (Nk - Nq = 64 is not a multiple of its block size 128)")) {
            try engine.run(q: q.tokens(64..<333), k: k, v: v, plan: LayerPlan(heads: [.dense, .defaultFlexPrefill]))
        }
        // A decode step (Nq = 1) anywhere runs dense, like every pattern.
        let (output, report) = try engine.run(q: q.tokens(332..<333), k: k, v: v, plan: xAttention,
                                              options: SparseOptions(denseFallback: .never, collectIndices: true))
        #expect(report.executed == [.dense, .dense])
        let reference = ReferenceAttention(problem: full, q: q, k: k, v: v)
        var metrics = ErrorMetrics()
        for h in 0..<2 {
            metrics.add(output: output.floats()[(h * 64)..<(h * 64 + 64)], reference: reference.output(head: h, query: 332, keys: nil))
        }
        #expect(metrics.relativeL2 <= Tolerance.relativeL2(full), "\(metrics)")
    }

    // MARK: TriangleMix

    @Test("TriangleMix: the shallow plan (dense by default) below the starting layer, Tri-shape (8, 512, 128) from it on")
    func triangleMixPlans() throws {
        let deep = HeadPattern.triShape(sink: 8, window: 512, last: 128)
        let mix = try TriangleMix(startingLayer: 16)
        #expect(mix.startingLayer == 16 && mix.triShape == deep)
        for layer in [0, 1, 15] { #expect(mix.plan(layer: layer, heads: 4) == .uniform(.dense, heads: 4), "layer \(layer)") }
        for layer in [16, 17, 31] { #expect(mix.plan(layer: layer, heads: 4) == .uniform(deep, heads: 4), "layer \(layer)") }
        let shallow = LayerPlan(heads: [.verticalSlash(vertical: 1000, slash: 6096), .aShape(sink: 128, window: 3968), .dense,
                                        .blockSparse(blocks: 100)])
        #expect(mix.plan(layer: 3, heads: 4, shallow: shallow) == shallow)
        #expect(mix.plan(layer: 16, heads: 4, shallow: shallow) == .uniform(deep, heads: 4))
        // 0 is upstream's effective default (-1): every layer Tri-shape.
        let everyLayer = try TriangleMix(startingLayer: 0)
        #expect(everyLayer.plan(layer: 0, heads: 2) == .uniform(deep, heads: 2))
        let custom = try TriangleMix(startingLayer: 2, triShape: .triShape(sink: 4, window: 64, last: 16))
        #expect(custom.plan(layer: 1, heads: 1) == .uniform(.dense, heads: 1))
        #expect(custom.plan(layer: 2, heads: 1) == .uniform(.triShape(sink: 4, window: 64, last: 16), heads: 1))
        #expect(throws: AttentionError.budget("TriangleMix starting layer must be >= 0 (0 is upstream's -1: every layer Tri-shape), got -1")) {
            try TriangleMix(startingLayer: -1)
        }
        #expect(throws: AttentionError.budget("TriangleMix's deep layers run tri-shape, got a-shape(sink 8, window 512)")) {
            try TriangleMix(startingLayer: 1, triShape: .aShape(sink: 8, window: 512))
        }
        #expect(throws: AttentionError.budget("tri-shape last must be >= 0, got -1")) {
            try TriangleMix(startingLayer: 1, triShape: .triShape(sink: 8, window: 512, last: -1))
        }
    }
}
