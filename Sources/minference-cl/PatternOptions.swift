import ArgumentParser
import MInferenceCL

/// `--pattern` and its budget flags, shared by `attention` and `inspect`, and the layer plan they
/// make together with a command's `--config` and its layer flag.
struct PatternOptions: ParsableArguments {
    @Option(name: .long, help: "Pattern for every head: dense, a-shape (stream_llm), vertical-slash (vertical_and_slash), block-sparse (block_sparse).")
    var pattern: String?
    @Option(name: .long, parsing: .unconditional, help: "A-shape: initial (sink) keys every query sees (default 128).")
    var sink: Int?
    @Option(name: .long, parsing: .unconditional, help: "A-shape: local window, the query included (default 3968).")
    var window: Int?
    @Option(name: .long, parsing: .unconditional, help: "Vertical-slash: key columns (default 1000).")
    var vertical: Int?
    @Option(name: .long, parsing: .unconditional, help: "Vertical-slash: diagonals (default 6096).")
    var slash: Int?
    @Option(name: .long, parsing: .unconditional, help: "Block-sparse: 64-key blocks per 64-query block (default 100).")
    var blocks: Int?

    /// The config's layer `layer` when `config` is given (the command names that layer
    /// `layerFlag`; `missingLayer` is its error), else one pattern for every head: `--pattern`, or
    /// dense when `missingPattern` is nil (otherwise the error to throw).
    func plan(heads: Int, config: String?, layer: Int?, layerFlag: String, missingLayer: String,
              missingPattern: String? = nil) throws -> LayerPlan {
        let budgetFlags: [(String, Int?)] = [("--sink", sink), ("--window", window), ("--vertical", vertical), ("--slash", slash), ("--blocks", blocks)]
        if let config {
            guard pattern == nil else { throw ValidationError("use either --pattern or --config, not both") }
            if let flag = budgetFlags.first(where: { $0.1 != nil }) {
                throw ValidationError("\(flag.0) applies to --pattern; --config sets the budgets of every head")
            }
            guard let layer else { throw ValidationError(missingLayer) }
            return LayerPlan(heads: try PatternConfig.load(path: config).patterns(layer: layer, heads: heads))
        }
        if layer != nil { throw ValidationError("\(layerFlag) applies to --config") }
        if pattern == nil, let missingPattern { throw ValidationError(missingPattern) }
        let name = pattern ?? "dense"
        guard let kind = HeadPattern.Kind(name: name) else {
            throw ValidationError("unknown --pattern '\(name)'; use dense, a-shape, vertical-slash or block-sparse")
        }
        let allowed: Set<String> = switch kind {
        case .dense: []
        case .aShape: ["--sink", "--window"]
        case .verticalSlash: ["--vertical", "--slash"]
        case .blockSparse: ["--blocks"]
        }
        if let flag = budgetFlags.first(where: { $0.1 != nil && !allowed.contains($0.0) }) {
            throw ValidationError("\(flag.0) does not apply to --pattern \(kind.rawValue)")
        }
        let pattern: HeadPattern = switch kind {
        case .dense: .dense
        case .aShape: .aShape(sink: sink ?? 128, window: window ?? 3968)
        case .verticalSlash: .verticalSlash(vertical: vertical ?? 1000, slash: slash ?? 6096)
        case .blockSparse: .blockSparse(blocks: blocks ?? 100)
        }
        try pattern.validate()
        return .uniform(pattern, heads: heads)
    }

    /// One plan per layer of a model: layer l's heads from `config`, or `--pattern` for every layer.
    func layerPlans(layers: Int, heads: Int, config: String?, missingPattern: String? = nil) throws -> [LayerPlan] {
        try (0..<layers).map { layer in
            try plan(heads: heads, config: config, layer: config == nil ? nil : layer, layerFlag: "--layer",
                     missingLayer: "--config needs a layer", missingPattern: missingPattern)
        }
    }

    /// A `--dense-fallback` value: auto or never.
    static func denseFallback(_ name: String) throws -> SparseOptions.DenseFallback {
        guard let value = SparseOptions.DenseFallback(rawValue: name) else {
            throw ValidationError("unknown --dense-fallback '\(name)'; use auto or never")
        }
        return value
    }
}
