import ArgumentParser
import MInferenceCL

/// `--pattern` and its budget flags, shared by `attention` and `inspect`, and the layer plan they
/// make together with a command's `--config` and its layer flag.
struct PatternOptions: ParsableArguments {
    @Option(name: .long, help: "Pattern for every head: dense, a-shape (stream_llm), vertical-slash (vertical_and_slash), block-sparse (block_sparse), tri-shape (tri_shape), xattention, flexprefill.")
    var pattern: String?
    @Option(name: .long, parsing: .unconditional, help: "A-shape and Tri-shape: initial (sink) keys every query sees (default 128; 8 with --tri-mix-start).")
    var sink: Int?
    @Option(name: .long, parsing: .unconditional, help: "A-shape and Tri-shape: local window, the query included (default 3968; 512 with --tri-mix-start).")
    var window: Int?
    @Option(name: .long, parsing: .unconditional, help: "Vertical-slash: key columns (default 1000).")
    var vertical: Int?
    @Option(name: .long, parsing: .unconditional, help: "Vertical-slash: diagonals (default 6096).")
    var slash: Int?
    @Option(name: .long, parsing: .unconditional, help: "Block-sparse: 64-key blocks per 64-query block (default 100).")
    var blocks: Int?
    @Option(name: .long, parsing: .unconditional, help: "Tri-shape: last queries that attend every causal key (default 100; 128 with --tri-mix-start).")
    var last: Int?
    @Option(name: .long, parsing: .unconditional, help: "XAttention: share of each query block's estimated mass to cover, in (0, 1] (default 0.9).")
    var threshold: Double?
    @Option(name: .long, parsing: .unconditional, help: "XAttention: antidiagonal stride, dividing the block size (default 8).")
    var stride: Int?
    @Option(name: .long, parsing: .unconditional, help: "XAttention: 64, 128, 256 or 512 (dividing its 2048-query estimation chunk); FlexPrefill: a multiple of 64 up to 512. Default 128, upstream's.")
    var blockSize: Int?
    @Option(name: .long, parsing: .unconditional, help: "FlexPrefill: cumulative attention to cover, in (0, 1] (default 0.9).")
    var gamma: Double?
    @Option(name: .long, parsing: .unconditional, help: "FlexPrefill: Jensen-Shannon distance under which a head is query-aware, in [0, 1] (default 0.1).")
    var tau: Double?
    @Option(name: .long, parsing: .unconditional, help: "FlexPrefill: lower budget bound in tokens (default none: one block). Above --max-budget, the upper bound wins for vertical-slash heads (upstream).")
    var minBudget: Int?
    @Option(name: .long, parsing: .unconditional, help: "FlexPrefill: upper budget bound in tokens (default none).")
    var maxBudget: Int?
    @Option(name: .long, parsing: .unconditional, help: "TriangleMix: layers from this index on run tri-shape (--sink, --window, --last; defaults TriangleMix's 8, 512, 128), the layers before run --config's patterns (upstream tri_mix_minference) or dense (tri_mix). 0 is upstream's effective default (every layer tri-shape); its material uses 16 for Llama-3.1-8B, 20 for Qwen2.5-7B.")
    var triMixStart: Int?

    /// The config's layer `layer` when `config` is given (the command names that layer
    /// `layerFlag`; `missingLayer` is its error), else one pattern for every head: `--pattern`, or
    /// dense when `missingPattern` is nil (otherwise the error to throw).
    func plan(heads: Int, config: String?, layer: Int?, layerFlag: String, missingLayer: String,
              missingPattern: String? = nil) throws -> LayerPlan {
        let budgetFlags: [(String, Bool)] = [
            ("--sink", sink != nil), ("--window", window != nil), ("--vertical", vertical != nil), ("--slash", slash != nil),
            ("--blocks", blocks != nil), ("--last", last != nil), ("--threshold", threshold != nil), ("--stride", stride != nil),
            ("--block-size", blockSize != nil), ("--gamma", gamma != nil), ("--tau", tau != nil), ("--min-budget", minBudget != nil),
            ("--max-budget", maxBudget != nil)]
        if let triMixStart {
            guard pattern == nil else { throw ValidationError("--tri-mix-start chooses each layer's pattern; use it without --pattern") }
            let triShapeFlags: Set<String> = ["--sink", "--window", "--last"]
            if let flag = budgetFlags.first(where: { $0.1 && !triShapeFlags.contains($0.0) }) {
                throw ValidationError("\(flag.0) does not apply to --tri-mix-start (its deep layers take --sink, --window and --last)")
            }
            guard let layer = layer ?? (triMixStart == 0 ? 0 : nil) else {
                throw ValidationError("\(layerFlag) is needed with --tri-mix-start (the layer decides the pattern)")
            }
            guard layer >= 0 else { throw ValidationError("\(layerFlag) must be >= 0, got \(layer)") }
            let mix = try TriangleMix(startingLayer: triMixStart, triShape: .triShape(sink: sink ?? 8, window: window ?? 512, last: last ?? 128))
            let shallow = try config.map { LayerPlan(heads: try PatternConfig.load(path: $0).patterns(layer: layer, heads: heads)) }
            return mix.plan(layer: layer, heads: heads, shallow: layer < triMixStart ? shallow : nil)
        }
        if let config {
            guard pattern == nil else { throw ValidationError("use either --pattern or --config, not both") }
            if let flag = budgetFlags.first(where: { $0.1 }) {
                throw ValidationError("\(flag.0) applies to --pattern; --config sets the budgets of every head")
            }
            guard let layer else { throw ValidationError(missingLayer) }
            return LayerPlan(heads: try PatternConfig.load(path: config).patterns(layer: layer, heads: heads))
        }
        if layer != nil { throw ValidationError("\(layerFlag) applies to --config and --tri-mix-start") }
        if pattern == nil, let missingPattern { throw ValidationError(missingPattern) }
        let name = pattern ?? "dense"
        guard let kind = HeadPattern.Kind(name: name) else {
            throw ValidationError("unknown --pattern '\(name)'; use dense, a-shape, vertical-slash, block-sparse, tri-shape, xattention or flexprefill"
                                  + (name.lowercased().hasPrefix("tri_mix") || name.lowercased().hasPrefix("tri-mix") ? " (TriangleMix is --tri-mix-start)" : ""))
        }
        let allowed: Set<String> = switch kind {
        case .dense: []
        case .aShape: ["--sink", "--window"]
        case .verticalSlash: ["--vertical", "--slash"]
        case .blockSparse: ["--blocks"]
        case .triShape: ["--sink", "--window", "--last"]
        case .xAttention: ["--threshold", "--stride", "--block-size"]
        case .flexPrefill: ["--gamma", "--tau", "--min-budget", "--max-budget", "--block-size"]
        }
        if let flag = budgetFlags.first(where: { $0.1 && !allowed.contains($0.0) }) {
            throw ValidationError("\(flag.0) does not apply to --pattern \(kind.rawValue)")
        }
        let pattern: HeadPattern = switch kind {
        case .dense: .dense
        case .aShape: .aShape(sink: sink ?? 128, window: window ?? 3968)
        case .verticalSlash: .verticalSlash(vertical: vertical ?? 1000, slash: slash ?? 6096)
        case .blockSparse: .blockSparse(blocks: blocks ?? 100)
        case .triShape: .triShape(sink: sink ?? 128, window: window ?? 3968, last: last ?? 100)
        case .xAttention: .xAttention(XAttentionParameters(threshold: threshold ?? 0.9, stride: stride ?? 8, blockSize: blockSize ?? 128))
        case .flexPrefill: .flexPrefill(FlexPrefillParameters(gamma: gamma ?? 0.9, tau: tau ?? 0.1, minBudget: minBudget,
                                                              maxBudget: maxBudget, blockSize: blockSize ?? 128))
        }
        try pattern.validate()
        return .uniform(pattern, heads: heads)
    }

    /// One plan per layer of a model: layer l's heads from `config`, or `--pattern` for every layer.
    func layerPlans(layers: Int, heads: Int, config: String?, missingPattern: String? = nil) throws -> [LayerPlan] {
        try (0..<layers).map { layer in
            try plan(heads: heads, config: config, layer: config == nil && triMixStart == nil ? nil : layer, layerFlag: "--layer",
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
