import MInferenceCL

/// The README's main job: long-context-like inputs at a few lengths on the default device; dense
/// attention checked against the float64 reference on a sample of rows, then each sparse pattern
/// timed against dense in the same run, with its density and its error against dense.
struct Demo {
    let context: ComputeContext
    let headsQ: Int
    let headsKV: Int
    let headDim: Int
    let dtype: DType
    let checkRows: Int
    let seed: UInt64
    let patterns: [HeadPattern]

    static let header = ["N", "pattern", "time ms", "TFLOP/s", "density", "speedup", "error", "check"]

    /// Upstream's default budgets on GPUs; on CPU devices, where lengths stay short, smaller ones
    /// so that each pattern still skips work.
    static func patterns(for kind: DeviceInfo.Kind) -> [HeadPattern] {
        kind == .gpu ? [.defaultAShape, .defaultVerticalSlash, .defaultBlockSparse]
            : [.aShape(sink: 64, window: 512), .verticalSlash(vertical: 100, slash: 500), .blockSparse(blocks: 8)]
    }

    func run(length n: Int, progress: (String) -> Void) throws -> [[String]] {
        let engine = AttentionEngine(context: context)
        let problem = try AttentionProblem(headsQ: headsQ, headsKV: headsKV, queryLength: n, keyLength: n,
                                           headDim: headDim, inputDType: dtype)
        progress("generating input")
        let input = try SyntheticInput(seed: seed).generate(context: context, problem: problem)
        let dense = try DeviceTensor(context: context, shape: problem.queryShape, dtype: dtype, label: "dense output")
        progress("dense attention")
        func runPlan(_ pattern: HeadPattern, into output: DeviceTensor) throws -> LayerResult {
            try output.poison()
            return try engine.run(problem: problem, q: input.q, k: input.k, v: input.v, output: output,
                                  plan: .uniform(pattern, heads: headsQ), options: SparseOptions(denseFallback: .never))
        }
        _ = try runPlan(.dense, into: dense) // warm-up: program builds stay out of the timing
        let denseMs = try runPlan(.dense, into: dense).totalTiming.totalMilliseconds
        progress("float64 reference on \(checkRows) rows")
        let reference = ReferenceAttention(problem: problem, q: try input.q.download(), k: try input.k.download(),
                                           v: try input.v.download())
        let denseValues = try dense.download().floats()
        var metrics = ErrorMetrics()
        var random = SeededRandom(seed: seed &+ 17)
        var samples = [(headsQ - 1, n - 1), (0, 0)]
        while samples.count < checkRows { samples.append((Int.random(in: 0..<headsQ, using: &random), Int.random(in: 0..<n, using: &random))) }
        for (h, i) in samples {
            let base = (h * n + i) * headDim
            metrics.add(output: denseValues[base..<base + headDim], reference: reference.output(head: h, query: i))
        }
        let ok = metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(problem)
        let flops = 4 * Double(headDim) * problem.densePairs * Double(headsQ)
        var rows = [["\(n)", "dense", Format.fixed(denseMs, 2), Format.fixed(flops / (denseMs * 1e9), 2), "100.0%", "1.00x",
                     Format.scientific(metrics.relativeL2) + " vs float64", ok ? "ok" : "FAIL"]]
        let sparse = try DeviceTensor(context: context, shape: problem.queryShape, dtype: dtype, label: "sparse output")
        for pattern in patterns {
            progress(pattern.description)
            _ = try runPlan(pattern, into: sparse)
            let report = try runPlan(pattern, into: sparse)
            let ms = report.totalTiming.totalMilliseconds
            let density = report.density(of: pattern.kind) ?? 0
            var error = ErrorMetrics()
            error.add(output: try sparse.download().floats(), reference: denseValues.map(Double.init))
            rows.append(["\(n)", pattern.description, Format.fixed(ms, 2), Format.fixed(flops * density / (ms * 1e9), 2),
                         Format.fixed(100 * density, 1) + "%", Format.fixed(denseMs / ms, 2) + "x",
                         Format.scientific(error.relativeL2) + " vs dense", error.nonFinite == 0 ? "ok" : "FAIL"])
        }
        return rows
    }
}
