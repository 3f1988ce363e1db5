import MInferenceCL

/// The correctness cases run on a device (check and tune) and how one is verified.
struct DeviceChecks {
    var real: [String]
    var rows: Int

    struct Case {
        var name: String
        var problem: AttentionProblem
        var plan: LayerPlan?
        var structured: Bool = false
    }

    func cases(quick: Bool) throws -> [Case] {
        func p(_ hq: Int, _ hkv: Int, _ nq: Int, _ nk: Int, _ d: Int, _ t: DType, causal: Bool = true, out: DType? = nil, batch: Int = 1) throws -> AttentionProblem {
            try AttentionProblem(batch: batch, headsQ: hq, headsKV: hkv, queryLength: nq, keyLength: nk, headDim: d, inputDType: t,
                                 outputDType: out, causal: causal)
        }
        var list: [Case] = [
            Case(name: "dense", problem: try p(32, 8, 4099, 4099, 128, .f16)),
            Case(name: "dense", problem: try p(8, 2, 1000, 1000, 128, .bf16)),
            Case(name: "dense", problem: try p(9, 3, 777, 777, 64, .f16)),
            Case(name: "dense", problem: try p(4, 1, 513, 513, 128, .f32)),
            Case(name: "dense", problem: try p(4, 2, 65, 65, 64, .f16, batch: 2)),
            Case(name: "dense", problem: try p(2, 1, 1, 1, 128, .f16)),
            Case(name: "dense non-causal", problem: try p(8, 2, 300, 700, 128, .f16, causal: false)),
            Case(name: "dense Nq<Nk", problem: try p(8, 2, 63, 1000, 64, .bf16)),
            Case(name: "dense Nq>Nk", problem: try p(2, 1, 100, 40, 128, .f16)),
            Case(name: "dense f16->f32", problem: try p(4, 1, 200, 200, 128, .f16, out: .f32)),
            Case(name: "dense d96", problem: try p(4, 2, 300, 300, 96, .f16)),
        ]
        let sparse: [(String, HeadPattern)] = [
            ("a-shape", .aShape(sink: 64, window: 512)),
            ("vertical-slash", .verticalSlash(vertical: 200, slash: 400)),
            ("block-sparse", .blockSparse(blocks: 12)),
            ("tri-shape", .triShape(sink: 64, window: 512, last: 100)),
            ("xattention", .defaultXAttention),
            ("flexprefill", .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1))),
            // 64-blocks: below the wgmma path's 128-row work-groups, so on the sparse kernels
            ("xattention b64", .xAttention(XAttentionParameters(threshold: 0.8, stride: 4, blockSize: 64))),
        ]
        for (name, pattern) in sparse {
            for dtype in [DType.f16, .bf16] {
                for structured in [false, true] {
                    list.append(Case(name: name + (structured ? " structured" : " random"), problem: try p(32, 8, 4099, 4099, 128, dtype),
                                     plan: .uniform(pattern, heads: 32), structured: structured))
                }
            }
            list.append(Case(name: name + " d64", problem: try p(9, 3, 1000, 1000, 64, .f16), plan: .uniform(pattern, heads: 9)))
            list.append(Case(name: name + " f32", problem: try p(4, 1, 700, 700, 128, .f32), plan: .uniform(pattern, heads: 4)))
        }
        let mixed = LayerPlan(heads: (0..<32).map { h in
            [HeadPattern.dense, .aShape(sink: 32, window: 256), .verticalSlash(vertical: 100, slash: 300), .blockSparse(blocks: 8)][h % 4]
        })
        list.append(Case(name: "mixed layer", problem: try p(32, 8, 2049, 2049, 128, .f16), plan: mixed, structured: true))
        return quick ? Array(list.prefix(4)) : list
    }

    /// Shapes where a key beyond some rows' causal edge (or outside A-shape's sink and window)
    /// must not change those rows' bits: chunked (Nq < Nk) and prefill, several warps and tiles.
    static func maskedKeyCases() throws -> [(name: String, problem: AttentionProblem, pattern: HeadPattern, key: Int)] {
        func p(_ nq: Int, _ nk: Int, _ d: Int, _ t: DType) throws -> AttentionProblem {
            try AttentionProblem(headsQ: 8, headsKV: 2, queryLength: nq, keyLength: nk, headDim: d, inputDType: t)
        }
        return [
            ("masked key: dense chunked", try p(176, 304, 64, .f16), .dense, 250),
            ("masked key: dense chunked", try p(176, 304, 128, .bf16), .dense, 200),
            ("masked key: dense prefill", try p(1000, 1000, 128, .f16), .dense, 700),
            ("masked key: dense prefill", try p(777, 777, 64, .bf16), .dense, 400),
            ("masked key: a-shape", try p(1000, 1000, 128, .f16), .aShape(sink: 16, window: 48), 500),
            ("masked key: a-shape", try p(333, 333, 64, .bf16), .aShape(sink: 16, window: 48), 100),
        ]
    }

    /// NaN and infinities planted in q, k and v (docs/NON-FINITE.md section 1): every pattern in
    /// f16 and bf16 over several tiles and row blocks, and chunks of dense and A-shape with planted
    /// keys beyond earlier rows' causal edges; (name, problem, plan, planted values, tensors planted).
    static func nonFiniteCases() throws -> [(name: String, problem: AttentionProblem, plan: LayerPlan, count: Int, tensors: [String])] {
        func p(_ nq: Int, _ nk: Int, _ d: Int, _ t: DType) throws -> AttentionProblem {
            try AttentionProblem(headsQ: 8, headsKV: 2, queryLength: nq, keyLength: nk, headDim: d, inputDType: t)
        }
        let patterns: [(String, HeadPattern)] = [
            ("dense", .dense), ("a-shape", .aShape(sink: 16, window: 200)), ("vertical-slash", .verticalSlash(vertical: 100, slash: 200)),
            ("block-sparse", .blockSparse(blocks: 5)), ("tri-shape", .triShape(sink: 16, window: 200, last: 100)),
            ("xattention", .defaultXAttention), ("flexprefill", .flexPrefill(FlexPrefillParameters(gamma: 0.9, tau: 0.1))),
        ]
        var cases: [(String, AttentionProblem, LayerPlan, Int, [String])] = []
        for (n, (name, pattern)) in patterns.enumerated() {
            let dtype: DType = n % 2 == 0 ? .f16 : .bf16
            cases.append(("non-finite: " + name, try p(1031, 1031, 128, dtype), .uniform(pattern, heads: 8), 9, ["q", "k", "v"]))
        }
        cases.append(("non-finite: dense d64", try p(777, 777, 64, .bf16), .uniform(.dense, heads: 8), 9, ["q", "k", "v"]))
        cases.append(("non-finite: dense chunked", try p(176, 304, 128, .f16), .uniform(.dense, heads: 8), 6, ["k", "v"]))
        cases.append(("non-finite: a-shape chunked", try p(300, 1000, 64, .bf16), .uniform(.aShape(sink: 16, window: 100), heads: 8), 6, ["k", "v"]))
        return cases
    }

    /// Chunks of a prefill whose rows are defined to equal the whole prompt's: every pattern, and a
    /// mixed layer; (whole-prompt problem, plan, first query of the chunk).
    static func chunkCases() throws -> [(name: String, problem: AttentionProblem, plan: LayerPlan, start: Int)] {
        func p(_ hq: Int, _ hkv: Int, _ n: Int, _ d: Int, _ t: DType) throws -> AttentionProblem {
            try AttentionProblem(headsQ: hq, headsKV: hkv, queryLength: n, keyLength: n, headDim: d, inputDType: t)
        }
        let mixed = LayerPlan(heads: (0..<9).map { h in
            [HeadPattern.dense, .aShape(sink: 32, window: 256), .verticalSlash(vertical: 100, slash: 300), .blockSparse(blocks: 8)][h % 4]
        })
        return [
            ("chunk: a-shape", try p(32, 8, 2051, 128, .f16), .uniform(.aShape(sink: 64, window: 512), heads: 32), 1333),
            ("chunk: vertical-slash", try p(32, 8, 2051, 128, .f16), .uniform(.verticalSlash(vertical: 200, slash: 400), heads: 32), 1300),
            ("chunk: block-sparse", try p(32, 8, 2051, 128, .bf16), .uniform(.blockSparse(blocks: 12), heads: 32), 1280),
            ("chunk: mixed layer", try p(9, 3, 1000, 64, .f16), mixed, 512),
            // the last chunk: its final 100 rows are the prompt's dense tail
            ("chunk: tri-shape", try p(32, 8, 2051, 128, .f16), .uniform(.triShape(sink: 64, window: 512, last: 100), heads: 32), 1333),
            // a chunk starting on a block boundary: the estimate of its query blocks is the prompt's
            ("chunk: xattention", try p(32, 8, 2051, 128, .bf16), .uniform(.defaultXAttention, heads: 32), 1280),
        ]
    }

    /// FlashAttention-layout views against contiguous tensors, every pattern in one mixed layer.
    static func layoutCases() throws -> [(name: String, problem: AttentionProblem, plan: LayerPlan)] {
        let mixed = LayerPlan(heads: (0..<32).map { h in
            [HeadPattern.dense, .aShape(sink: 32, window: 256), .verticalSlash(vertical: 100, slash: 300), .blockSparse(blocks: 8)][h % 4]
        })
        return [
            ("[B, N, H, d] views", try AttentionProblem(batch: 2, headsQ: 32, headsKV: 8, queryLength: 1500, keyLength: 1500, headDim: 128,
                                                        inputDType: .f16), mixed),
            ("[B, N, H, d] views", try AttentionProblem(headsQ: 32, headsKV: 8, queryLength: 777, keyLength: 777, headDim: 64,
                                                        inputDType: .bf16), mixed),
        ]
    }

    func check(_ c: Case, engine: AttentionEngine) throws -> LayerVerification {
        let context = engine.context
        let problem = c.problem
        let q: Tensor, k: Tensor, v: Tensor
        if c.name.hasPrefix("real ") {
            let folder = real.first { c.name.hasSuffix($0.split(separator: "/").suffix(2).joined(separator: "/")) }!
            q = try NPYFile.read(folder + "/q.npy"); k = try NPYFile.read(folder + "/k.npy"); v = try NPYFile.read(folder + "/v.npy")
        } else if c.structured {
            (q, k, v) = try SyntheticInput(seed: 5).generateOnHost(context: context, problem: problem)
        } else {
            (q, k, v) = problem.normalInputs(seed: UInt64(problem.queryLength * 977 + problem.headDim))
        }
        return try Self.verifiedRun(engine: engine, problem: problem, q: q, k: k, v: v,
                                    plan: c.plan ?? .uniform(.dense, heads: problem.headsQ),
                                    options: SparseOptions(denseFallback: .never, collectIndices: true),
                                    rows: Self.rows(problem: problem, count: rows))
    }

    /// Uploads q, k and v, runs `plan` into an output poisoned with NaN first, and verifies the
    /// output and indices against the float64 reference on `rows`.
    static func verifiedRun(engine: AttentionEngine, problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor, plan: LayerPlan,
                            options: SparseOptions, rows: [(head: Int, query: Int)]) throws -> LayerVerification {
        let context = engine.context
        let dq = try DeviceTensor(context: context, copying: q), dk = try DeviceTensor(context: context, copying: k)
        let dv = try DeviceTensor(context: context, copying: v)
        let out = try DeviceTensor(context: context, shape: problem.queryShape, dtype: problem.outputDType)
        try out.poison()
        let report = try engine.run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan, options: options)
        let output = try out.download()
        var verification = LayerVerification(reference: ReferenceAttention(problem: problem, q: q, k: k, v: v), plan: plan,
                                             output: output, report: report, rows: rows)
        if output.floats().contains(where: { !$0.isFinite }) { verification.problems.append("output holds unwritten or non-finite values") }
        return verification
    }

    static func rows(problem: AttentionProblem, count: Int) -> [(head: Int, query: Int)] {
        var random = SeededRandom(seed: 99)
        let heads = problem.batch * problem.headsQ, n = problem.queryLength
        var rows = [(0, 0), (heads - 1, n - 1), (heads / 2, min(n - 1, 64)), (0, n - 1)]
        while rows.count < count { rows.append((Int.random(in: 0..<heads, using: &random), Int.random(in: 0..<n, using: &random))) }
        return rows
    }
}
