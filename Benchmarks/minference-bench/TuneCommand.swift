import ArgumentParser
import MInferenceCL

/// `minference-bench tune`: tries kernel configurations (tuning overrides such as
/// "m_tiles=2,kv=32,query_tile=128"), checks each against the float64 reference first and only
/// then times it (a wrong candidate is reported, never timed), on dense and on one sparse kernel.
struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tune", abstract: "Check and time kernel configurations.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, parsing: .upToNextOption, help: "Tuning overrides to try (MINFERENCECL_TUNING syntax).")
    var configs: [String]
    @Option(name: .long, parsing: .upToNextOption, help: "Dense lengths to time (Hq=32, Hkv=8).")
    var lengths: [Int] = [16384, 65536]
    @Option(name: .long, help: "Length of the sparse-kernel runs (structured input; 0: none).")
    var sparseLength: Int = 131072
    @Option(name: .long, parsing: .upToNextOption, help: "Sparse patterns timed per config: a-shape, vertical-slash, block-sparse.")
    var sparsePatterns: [String] = ["a-shape", "vertical-slash", "block-sparse"]
    @Option(name: .long) var headDim: Int = 128
    @Option(name: .long) var repeats: Int = 5

    func run() throws {
        let base = try deviceOptions.engine()
        let checks = DeviceChecks(real: [], rows: 64)
        let measure = Measurement(warmup: 1, repeats: repeats)
        let checkCases = try checks.cases(quick: false).filter {
            ($0.problem.inputDType != .f32) && ($0.name == "dense" || $0.name.hasSuffix("structured") || $0.name == "mixed layer")
        }
        var table: [[String]] = []
        for override in configs {
            let engine = AttentionEngine(context: base.context, tuningOverride: override)
            let probe = try AttentionProblem(headsQ: 32, headsKV: 8, queryLength: 4096, keyLength: 4096, headDim: headDim, inputDType: .f16)
            let config = engine.kernelConfig(for: probe)
            var failures: [String] = []
            for c in checkCases {
                let outcome = try checks.check(c, engine: engine)
                if !outcome.passed { failures.append("\(c.name) \(c.problem.inputDType): \(outcome.problems.first ?? "")") }
            }
            var row = [override, config.description, failures.isEmpty ? "ok" : "FAIL"]
            if failures.isEmpty {
                let runs = lengths.map { ($0, HeadPattern.dense) } + (sparseLength > 0 ? try sparsePlans() : [])
                for (n, pattern) in runs {
                    let problem = try AttentionProblem(headsQ: 32, headsKV: 8, queryLength: n, keyLength: n, headDim: headDim, inputDType: .f16)
                    let (q, k, v) = try SyntheticInput(seed: 3).generate(context: engine.context, problem: problem)
                    let output = try DeviceTensor(context: engine.context, shape: problem.queryShape, dtype: .f16)
                    let plan = LayerPlan.uniform(pattern, heads: 32)
                    var density = 1.0
                    let t = try measure.median {
                        let report = try engine.run(problem: problem, q: q, k: k, v: v, output: output, plan: plan,
                                                    options: SparseOptions(denseFallback: .never))
                        density = report.density(of: pattern.kind) ?? 1
                        return report.totalTiming
                    }
                    // TFLOP/s of the attention kernel on the pairs it covers; the pipeline total beside it.
                    let kernel = t.phases[.kernel] ?? t.total
                    let tflops = 4 * Double(headDim) * density * problem.densePairs * 32 / (kernel * 1e9)
                    row.append("\(Format.fixed(kernel, 2)) ms \(Format.fixed(tflops, 0)) TF" + (pattern.kind == .dense ? "" : " (\(Format.fixed(t.total, 2)))"))
                }
            } else {
                for f in failures.prefix(3) { print("  \(override): \(f)") }
            }
            table.append(row)
            print(row.joined(separator: " | "))
        }
        let header = ["override", "config", "check"] + lengths.map { "dense \(RunCommand.label($0))" }
            + (sparseLength > 0 ? sparsePatterns.map { "\($0) \(RunCommand.label(sparseLength)) kernel (pipeline)" } : [])
        print(Table(header: header, rows: table).render())
    }

    /// The benchmark workload's budget of each sparse pattern (RESULTS.md).
    func sparsePlans() throws -> [(Int, HeadPattern)] {
        try sparsePatterns.map { name in
            switch name {
            case "a-shape": (sparseLength, .aShape(sink: 128, window: 3968))
            case "vertical-slash": (sparseLength, .verticalSlash(vertical: 1000, slash: 6096))
            case "block-sparse": (sparseLength, .blockSparse(blocks: 100))
            default: throw ValidationError("unknown sparse pattern '\(name)' (a-shape, vertical-slash, block-sparse)")
            }
        }
    }
}
