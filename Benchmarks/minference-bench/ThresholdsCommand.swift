import ArgumentParser
import MInferenceCL

/// `minference-bench thresholds`: the length below which a dense head is faster than each
/// pattern's whole pipeline on this device, for the device profile table (DeviceProfile.swift).
struct ThresholdsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "thresholds", abstract: "Measure where each pattern starts to beat dense.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, parsing: .upToNextOption) var lengths: [Int] = [1024, 2048, 4096, 8192, 16384, 32768]
    @Option(name: .long) var heads: Int = 32
    @Option(name: .long) var kvHeads: Int = 8
    @Option(name: .long) var headDim: Int = 128
    @Option(name: .long) var dtype: String = "f16"
    @Option(name: .long) var repeats: Int = 5

    func run() throws {
        let engine = try deviceOptions.engine()
        guard let dtype = DType(name: dtype) else { throw ValidationError("unknown --dtype") }
        let measure = Measurement(warmup: 1, repeats: repeats)
        let kinds: [HeadPattern.Kind] = [.aShape, .verticalSlash, .blockSparse]
        var faster: [HeadPattern.Kind: [Bool]] = [:]
        var table: [[String]] = []
        for n in lengths {
            let problem = try AttentionProblem(headsQ: heads, headsKV: kvHeads, queryLength: n, keyLength: n, headDim: headDim, inputDType: dtype)
            let (q, k, v) = try SyntheticInput(seed: 3).generate(context: engine.context, problem: problem)
            let output = try DeviceTensor(context: engine.context, shape: problem.queryShape, dtype: dtype)
            func time(_ pattern: HeadPattern) throws -> Double {
                try measure.median {
                    try engine.run(problem: problem, q: q, k: k, v: v, output: output, plan: .uniform(pattern, heads: heads),
                                   options: SparseOptions(denseFallback: .never)).totalTiming
                }.total
            }
            let dense = try time(.dense)
            var row = ["\(n)", Format.fixed(dense, 3)]
            for kind in kinds {
                let ms = try time(RunCommand.pattern(kind))
                faster[kind, default: []].append(ms < dense)
                row.append(Format.fixed(ms, 3))
            }
            table.append(row)
        }
        print(Table(header: ["N", "dense ms", "a-shape ms", "vertical-slash ms", "block-sparse ms"], rows: table).render())
        let info = engine.context.device.info
        var entries: [String] = []
        for kind in kinds {
            // The shortest measured length from which the pattern wins at every longer length
            // (twice the longest length when it never does).
            let wins = faster[kind] ?? []
            let from = wins.indices.first { wins[$0...].allSatisfy { $0 } }
            let threshold = from.map { lengths[$0] } ?? 2 * (lengths.last ?? 0)
            entries.append(".\(kind == .aShape ? "aShape" : kind == .verticalSlash ? "verticalSlash" : "blockSparse"): \(threshold)")
        }
        print("DeviceProfile row: vendor \"\(info.vendor)\", device \"\(info.name)\", denseBelow: [\(entries.joined(separator: ", "))]")
    }
}
