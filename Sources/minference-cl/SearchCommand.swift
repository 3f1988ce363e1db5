import ArgumentParser
import FoundationEssentials
import MInferenceCL

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Offline kernel-aware pattern search: per head the pattern and budgets that keep the most attention at equal kernel cost.",
        discussion: """
        Each --layers folder holds one layer's calibration q.npy [Hq, N, d], k.npy and v.npy [Hkv, N, d] (v is not read), in
        model order; the config gets one entry per folder. Per head, A-shape (a ladder of sinks, each with the largest window
        that fits), vertical-slash (a ladder of vertical budgets, each with the largest slash budget whose cost measured on
        this head's input fits) and block-sparse (upstream's 100 blocks, where they fit) are scored by attention recall on the
        device; the best is written. Cost is the kernel's real FLOPs: the 64x64 tiles it visits. --density D allows D times
        the dense causal kernel's tiles per head; --budget SINK+WINDOW the tiles of that A-shape at the layer's length.
        The config is MInference's JSON (loadable by MInference and by `attention --config`); the score field is the recall.
        """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, parsing: .upToNextOption, help: "Calibration layer folders in model order (q.npy, k.npy, v.npy each).")
    var layers: [String] = []
    @Option(name: .long, parsing: .unconditional, help: "Per-head FLOPs budget as a share of dense causal attention's, in (0, 1].")
    var density: Double?
    @Option(name: .long, help: "Per-head FLOPs budget as an A-shape's SINK+WINDOW at the layer's length, e.g. 1k+4k (k = 1024).")
    var budget: String?
    @Option(name: .long, help: "layer: a layer's heads share heads x the budget, spent where it keeps the most attention; head: every head gets at most the budget.")
    var allocation: String = "layer"
    @Option(name: .long, help: "Config to write (MInference JSON).")
    var out: String
    @Option(name: .long, help: "Write the report (every head's candidates, budgets, recall, density, cost) as JSON here.")
    var report: String?
    @Option(name: .long, help: "Also write the best uniform vertical-slash config of the same cost (the comparison) here.")
    var uniformOut: String?
    @Option(name: .long, help: "A-shape sink budgets to try, comma-separated (default \(SearchOptions.defaultSinks.map(String.init).joined(separator: ","))).")
    var sinks: String?
    @Option(name: .long, help: "Vertical-slash vertical budgets to try, comma-separated (default \(SearchOptions.defaultVerticals.map(String.init).joined(separator: ","))).")
    var verticals: String?
    @Flag(name: .long, inversion: .prefixedNo, help: "Score upstream's block-sparse (100 blocks) where its cost fits.")
    var blockSparse = true
    @Flag(name: .long, inversion: .prefixedNo, help: "With --allocation layer, offer the uniform vertical-slash config's budgets as candidates (the search then never does worse than it).")
    var uniformCandidates = true
    @Flag(name: .long, help: "Read 16-bit integer/void .npy words as bfloat16.")
    var bf16 = false

    func run() throws {
        try reportingErrors {
            guard !layers.isEmpty else { throw ValidationError("--layers needs at least one layer folder") }
            let target: SearchTarget
            switch (density, budget) {
            case (let d?, nil): target = .density(d)
            case (nil, let spec?): target = try SearchTarget(budget: spec)
            default: throw ValidationError("give exactly one of --density D or --budget SINK+WINDOW")
            }
            guard let allocation = SearchOptions.Allocation(rawValue: allocation) else {
                throw ValidationError("unknown --allocation '\(self.allocation)'; use layer or head")
            }
            var options = SearchOptions(target: target, allocation: allocation, blockSparse: blockSparse, uniformBaseline: true,
                                        uniformCandidates: uniformCandidates)
            if let sinks { options.sinks = try Self.list(sinks, flag: "--sinks") }
            if let verticals { options.verticals = try Self.list(verticals, flag: "--verticals") }
            try options.validate()
            for path in [out, report, uniformOut].compactMap({ $0 }) { try OutputFiles.checkWritable(path) }
            for folder in layers {
                for file in ["q.npy", "k.npy"] where !FileManager.default.fileExists(atPath: folder + "/" + file) {
                    throw ValidationError("--layers \(folder): no \(file) (a layer folder holds q.npy, k.npy and v.npy)")
                }
            }

            let context = try deviceOptions.openContext()
            let search = PatternSearch(engine: AttentionEngine(context: context), options: options)
            var results: [LayerSearch] = []
            for (index, folder) in layers.enumerated() {
                let prefix = "layer \(index + 1)/\(layers.count) (\(folder))"
                Terminal.progress("\(prefix): reading")
                let layer = try CalibrationLayer.load(folder: folder, bf16: bf16)
                results.append(try search.search(layer: layer) { Terminal.progress("\(prefix): \($0)") })
            }
            Terminal.progress("searched \(layers.count) layer(s)", done: true)

            let config = PatternSearch.config(results)
            try config.write(to: out)
            let summary = SearchReport(layers: results, target: target, device: "\(context.device.info.name) (\(context.device.info.platformName), driver \(context.device.info.driverVersion))")
            if let report { try Self.writeText(try summary.json(), to: report) }
            if let uniformOut {
                guard results.allSatisfy({ $0.uniform != nil }) else {
                    throw ValidationError("no uniform vertical-slash config fits the target in every layer; nothing written to \(uniformOut)")
                }
                try PatternConfig(layers: results.map { layer in layer.heads.map { _ in layer.uniform!.pattern } },
                                  scores: results.map { $0.uniform!.heads.map(\.recall) }).write(to: uniformOut)
            }
            print("device: \(summary.device)")
            print(summary.table())
            print("wrote \(out) (\(results.count) layer(s))" + (report.map { ", report \($0)" } ?? "") + (uniformOut.map { ", uniform config \($0)" } ?? ""))
        }
    }

    /// Whole numbers >= `minimum` separated by commas.
    static func list(_ text: String, flag: String, minimum: Int = 1) throws -> [Int] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.filter { $0 != " " }) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! >= minimum }) else {
            throw ValidationError("\(flag) takes whole numbers >= \(minimum) separated by commas, got '\(text)'")
        }
        return values.map { $0! }
    }

    static func writeText(_ bytes: [UInt8], to path: String) throws {
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TensorFileError.unwritable(path: path, reason: "\(error)")
        }
    }
}
