import ArgumentParser
import FoundationEssentials
import MInferenceCL

/// `minference-bench run`: the workload (default: the Llama-3-8B layer, Hq=32, Hkv=8,
/// d=128, fp16, causal) for dense and each sparse pattern on structured and random inputs;
/// medians of profiled device time; a table on stdout and the JSON results file.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Time dense and sparse attention on the workload.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, parsing: .upToNextOption, help: "Sequence lengths of the whole-layer runs.")
    var lengths: [Int] = [8192, 16384, 32768, 65536, 131072, 262144]
    @Option(name: .long, parsing: .upToNextOption, help: "Lengths run with one query head and its KV head (reported per head and x32; 0: none).")
    var oneHeadLengths: [Int] = [1_048_576]
    @Option(name: .long) var heads: Int = 32
    @Option(name: .long) var kvHeads: Int = 8
    @Option(name: .long) var headDim: Int = 128
    @Option(name: .long) var dtype: String = "f16"
    @Option(name: .long, parsing: .upToNextOption, help: "dense, vertical-slash, a-shape, block-sparse.")
    var patterns: [String] = ["dense", "vertical-slash", "a-shape", "block-sparse"]
    @Option(name: .long, parsing: .upToNextOption, help: "structured and/or random.")
    var inputs: [String] = ["structured", "random"]
    @Option(name: .long, help: "Seed of the generated inputs (the baseline script's --seed; both default to 1).")
    var seed: UInt64 = 1
    @Option(name: .long) var warmup: Int = 1
    @Option(name: .long) var repeats: Int = 5
    @Option(name: .long, help: "Skip dense runs above this length (they dominate the time).")
    var denseMaxLength: Int = Int.max
    @Option(name: .long, help: "JSON written by Benchmarks/baselines/baseline.py in the same device call.")
    var baseline: String?
    @Option(name: .long, help: "Results file (default Benchmarks/results/<device-slug>.json).")
    var out: String?
    @Option(name: .long, help: "Estimation products of the sparse patterns: clblast or fused (default: the device profile's).")
    var estimation: String?
    @Option(name: .long, help: "Memory order of q, k, v and the output: contiguous ([B, H, N, d]) or token-major (FlashAttention's [B, N, H, d]).")
    var layout: String = "contiguous"
    @Option(name: .long, help: "Folder for the block sets XAttention and FlexPrefill selected on the structured input: {xattention,flexprefill}-N{N}.npy, uint8 [Hq, nb, nb], 1 where query block m visits key block n (Benchmarks/baselines/compare_masks.py compares them with upstream's).")
    var masksOut: String?
    @Flag(name: .long, help: "Time the layer as for inputs known to be finite (SparseOptions.assumeFinite, the CLI's default path): no non-finite scan, one variant of each attention kernel; without it, the device-tensor API's default.")
    var inputsChecked = false
    @Option(name: .long, help: "Commit of the code measured (recorded in the results).")
    var commit: String = "unknown"
    @Option(name: .long, help: "The exact command, as recorded in the results (default: this process's arguments).")
    var command: String?

    func run() throws {
        let engine = try deviceOptions.engine()
        let info = engine.context.device.info
        guard let dtype = DType(name: dtype) else { throw ValidationError("unknown --dtype \(self.dtype)") }
        let kinds = try patterns.map { name -> HeadPattern.Kind in
            guard let kind = HeadPattern.Kind(name: name) else { throw ValidationError("unknown pattern \(name)") }
            return kind
        }
        let baselines = try BaselineRuns(path: baseline)
        let backend = try estimation.map { name -> DeviceProfile.EstimationBackend in
            guard let b = DeviceProfile.EstimationBackend(rawValue: name) else { throw ValidationError("unknown --estimation \(name)") }
            return b
        }
        let measure = Measurement(warmup: warmup, repeats: repeats)
        let configProblem = try AttentionProblem(headsQ: heads, headsKV: kvHeads, queryLength: 4096, keyLength: 4096, headDim: headDim, inputDType: dtype)
        let path = engine.kernelConfig(for: configProblem)
        print("device: \(info.name) (\(info.platformName), driver \(info.driverVersion)); dense path \(path); \(engine.context.wgmma)")
        var results = ResultsFile(device: info.name, driver: info.driverVersion, commit: commit, date: BenchEnvironment.today,
                                  command: command ?? CommandLine.arguments.joined(separator: " "), path: path.description, runs: [])
        var table: [[String]] = []
        let jobs = lengths.filter { $0 > 0 }.map { ($0, heads, kvHeads, false) } + oneHeadLengths.filter { $0 > 0 }.map { ($0, 1, 1, true) }
        for (n, hq, hkv, perHead) in jobs {
            let problem = try AttentionProblem(headsQ: hq, headsKV: hkv, queryLength: n, keyLength: n, headDim: headDim, inputDType: dtype)
            for input in inputs {
                let generator = input == "random" ? SyntheticInput.random(seed: seed) : SyntheticInput(seed: seed)
                var (q, k, v) = try generator.generate(context: engine.context, problem: problem)
                var output = try DeviceTensor(context: engine.context, shape: problem.queryShape, dtype: dtype)
                if layout == "token-major" {
                    func tokenMajor(_ t: DeviceTensor, copy: Bool) throws -> DeviceTensor {
                        let buffer = try DeviceBuffer(context: engine.context, byteCount: t.elementCount * dtype.byteCount, label: "token-major")
                        if copy { try t.download().tokenMajorBytes().withUnsafeBytes { try buffer.write($0) } }
                        return try DeviceTensor(buffer: buffer, dtype: dtype, shape: t.shape, strides: DeviceTensor.tokenMajorStrides(t.shape))
                    }
                    (q, k, v) = (try tokenMajor(q, copy: true), try tokenMajor(k, copy: true), try tokenMajor(v, copy: true))
                    output = try tokenMajor(output, copy: false)
                } else if layout != "contiguous" {
                    throw ValidationError("unknown --layout \(layout) (contiguous or token-major)")
                }
                var denseMs: Double?
                for kind in kinds {
                    if kind == .dense && (n > denseMaxLength || input == "random" && inputs.contains("structured")) { continue }
                    Terminal.progress("N=\(n) Hq=\(hq) \(input) \(kind.rawValue)...")
                    let plan = LayerPlan.uniform(Self.pattern(kind), heads: hq)
                    var density = 1.0
                    let timing = try measure.median {
                        let report = try engine.run(problem: problem, q: q, k: k, v: v, output: output, plan: plan,
                                                    options: SparseOptions(denseFallback: .never, estimation: backend,
                                                                           assumeFinite: inputsChecked))
                        density = report.density(of: kind) ?? 0
                        return report.totalTiming
                    }
                    if kind == .dense { denseMs = timing.total }
                    if let masksOut, kind.selectsBlocks, input == "structured", !perHead {
                        let report = try engine.run(problem: problem, q: q, k: k, v: v, output: output, plan: plan,
                                                    options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: backend))
                        let lists = kind == .xAttention ? report.indices.xAttention : report.indices.flexPrefill.map(\.blocks)
                        try BlockMasks.write(lists, heads: hq, to: "\(masksOut)/\(kind.rawValue)-N\(n).npy")
                    }
                    let pairs = density * problem.densePairs * Double(hq)
                    let tflops = 4 * Double(headDim) * pairs / (timing.total * 1e9)
                    // baseline.py times the structured input only; random runs get no baseline.
                    let matched = input == "structured" ? baselines.matches(kind: kind, n: n, heads: hq) : []
                    let name = "\(kind.rawValue)-\(Self.label(n))" + (perHead ? "-1head" : "") + "-\(input)" + (layout == "contiguous" ? "" : "-\(layout)")
                    let run = ResultsFile.Run(
                        name: name, pattern: kind.rawValue, N: n, Hq: hq, Hkv: hkv, d: headDim, dtype: dtype.rawValue, causal: true,
                        ms: timing.total, tflops: tflops, density: density,
                        baseline: matched.first?.name, baseline_ms: matched.first?.ms, speedup: matched.first.map { $0.ms / timing.total },
                        input: input,
                        phases: Dictionary(uniqueKeysWithValues: timing.phases.map { ($0.key.rawValue, $0.value) }),
                        spread: timing.spread, per_head: perHead, ms_x32: perHead ? timing.total * 32 : nil,
                        other_baselines: Dictionary(matched.dropFirst().map { ($0.name, $0.ms) }, uniquingKeysWith: { a, _ in a }),
                        speedup_vs_dense: kind == .dense ? nil : denseMs.map { $0 / timing.total },
                        ms_commands: timing.commands, path: path.path.rawValue)
                    results.runs.append(run)
                    table.append([name, Format.fixed(timing.total, 3), Format.fixed(timing.commands, 3),
                                  Format.fixed(timing.phases[.estimation] ?? 0, 3),
                                  Format.fixed(timing.phases[.indices] ?? 0, 3), Format.fixed(timing.phases[.kernel] ?? 0, 3),
                                  Format.fixed(tflops, 1), Format.fixed(100 * density, 1) + "%",
                                  run.speedup_vs_dense.map { Format.fixed($0, 2) + "x" } ?? "-",
                                  matched.first.map { "\($0.name) \(Format.fixed($0.ms, 2)) ms = \(Format.fixed($0.ms / timing.total, 2))x" } ?? "-"])
                }
            }
        }
        Terminal.progress("done", done: true)
        print(Table(header: ["run", "ms (span)", "ms (commands)", "estimate", "indices", "kernel", "TFLOP/s", "density", "vs dense", "baseline"],
                    rows: table).render())
        let file = out ?? "Benchmarks/results/\(ResultsFile.slug(info.name)).json"
        try results.write(to: file)
        print("wrote \(file)")
    }

    static func pattern(_ kind: HeadPattern.Kind) -> HeadPattern {
        switch kind {
        case .dense: .dense
        case .aShape: .aShape(sink: 128, window: 3968)
        case .verticalSlash: .defaultVerticalSlash
        case .blockSparse: .defaultBlockSparse
        case .triShape: .defaultTriShape
        case .xAttention: .defaultXAttention
        case .flexPrefill: .defaultFlexPrefill
        }
    }

    static func label(_ n: Int) -> String { n >= 1 << 20 && n % (1 << 20) == 0 ? "\(n >> 20)M" : n % 1024 == 0 ? "\(n / 1024)K" : "\(n)" }
}

/// XAttention's and FlexPrefill's block sets as upstream's boolean block masks (uint8 .npy,
/// [heads, nb, nb]), the format Benchmarks/baselines/prefill_methods.py writes upstream's in.
enum BlockMasks {
    static func write(_ lists: [BlockSparseHeadIndices], heads: Int, to path: String) throws {
        let nb = lists.first.map { $0.firstQueryBlock + $0.selected.count } ?? 0
        var mask = [UInt8](repeating: 0, count: heads * nb * nb)
        for index in lists {
            for (b, blocks) in index.selected.enumerated() {
                for n in blocks { mask[(index.head * nb + index.firstQueryBlock + b) * nb + Int(n)] = 1 }
            }
        }
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try Data(NPYFile.encode(descr: "|u1", shape: [heads, nb, nb], data: mask)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
