import MInferenceCL

/// The README's main job: long-context-like inputs at a few lengths, timed on the device and
/// checked against the float64 reference on a sample of rows.
struct Demo {
    let context: ComputeContext
    let headsQ: Int
    let headsKV: Int
    let headDim: Int
    let dtype: DType
    let checkRows: Int
    let seed: UInt64

    static let header = ["N", "pattern", "time ms", "TFLOP/s", "rel err", "max err", "check"]

    func run(length n: Int, progress: (String) -> Void) throws -> [String] {
        let engine = AttentionEngine(context: context)
        let problem = try AttentionProblem(headsQ: headsQ, headsKV: headsKV, queryLength: n, keyLength: n,
                                           headDim: headDim, inputDType: dtype)
        progress("generating input")
        let input = try SyntheticInput(seed: seed).generate(context: context, problem: problem)
        let output = try DeviceTensor(context: context, shape: problem.queryShape, dtype: dtype, label: "output")
        try output.poison()
        progress("dense attention")
        _ = try engine.dense(problem: problem, q: input.q, k: input.k, v: input.v, output: output)  // warm-up
        try output.poison()
        let timing = try engine.dense(problem: problem, q: input.q, k: input.k, v: input.v, output: output)
        progress("float64 reference on \(checkRows) rows")
        let reference = ReferenceAttention(problem: problem, q: try input.q.download(), k: try input.k.download(),
                                           v: try input.v.download())
        let out = try output.download().floats()
        var metrics = ErrorMetrics()
        var random = SeededRandom(seed: seed &+ 17)
        var samples = [(headsQ - 1, n - 1), (0, 0)]
        while samples.count < checkRows { samples.append((Int.random(in: 0..<headsQ, using: &random), Int.random(in: 0..<n, using: &random))) }
        for (h, i) in samples {
            let base = (h * n + i) * headDim
            metrics.add(output: out[base..<base + headDim], reference: reference.output(head: h, query: i))
        }
        let ms = timing.milliseconds(.kernel)
        let ok = metrics.nonFinite == 0 && metrics.relativeL2 <= Tolerance.relativeL2(dtype)
        return ["\(n)", "dense", Format.fixed(ms, 2), Format.fixed(problem.denseFLOPs / (ms * 1e9), 2),
                Format.scientific(metrics.relativeL2), Format.scientific(metrics.maxAbs), ok ? "ok" : "FAIL"]
    }
}
