import FoundationEssentials

/// What the search did, for people and for scripts: per layer and head the chosen pattern, its
/// budgets, cost, density and recall, every candidate it was chosen over, and the uniform
/// vertical-slash config of the same cost. `json()` is the machine form, `table()` the
/// readable one.
public struct SearchReport: Codable, Sendable {
    /// One scored pattern.
    public struct Candidate: Codable, Sendable {
        /// This project's name: a-shape, vertical-slash, block-sparse.
        public var pattern: String
        /// The config entry upstream reads: [name, v, s].
        public var entry: [String]
        /// Tiles the kernel visits.
        public var tiles: Int
        /// Their share of dense causal attention's tiles (the FLOPs share), in [0, 1].
        public var cost: Double
        /// Covered share of the causal pairs.
        public var density: Double
        /// Mean share of each query's dense softmax mass inside the covered keys, in [0, 1].
        public var recall: Double

        init(_ c: SearchCandidate) {
            pattern = c.pattern.kind.rawValue
            entry = SearchReport.entry(c.pattern)
            tiles = c.cost.tiles
            cost = c.cost.share
            density = c.density
            recall = c.recall
        }
    }

    /// One query head: the chosen candidate and what it was chosen over.
    public struct Head: Codable, Sendable {
        /// The query head.
        public var head: Int
        /// The candidate written to the config.
        public var chosen: Candidate
        /// The best candidate of another kind within what the head could spend (the target per
        /// head with head allocation, the chosen cost with layer allocation).
        public var alternative: Candidate?
        /// The candidates no other beats on both cost and recall (the chosen one included),
        /// cheapest first: what this head keeps at each price.
        public var candidates: [Candidate]
        /// Candidates scored in all.
        public var scored: Int
        /// Why a family offered nothing for this head.
        public var notes: [String]
    }

    /// The best uniform vertical-slash config of the same total cost: one budget pair for every
    /// head of the layer.
    public struct Uniform: Codable, Sendable {
        /// The config entry upstream reads: `[vertical_and_slash, v, s]`.
        public var entry: [String]
        /// Mean recall over the layer's heads.
        public var meanRecall: Double
        /// Mean covered density over the layer's heads.
        public var meanDensity: Double
        /// Summed tiles of the layer's heads.
        public var tiles: Int
        /// Each head's cost, density and recall with the pair.
        public var perHead: [Candidate]
        /// Every vertical budget tried, with its largest fitting slash budget.
        public var tried: [Tried]

        /// One budget pair the uniform search tried.
        public struct Tried: Codable, Sendable {
            /// The config entry: `[vertical_and_slash, v, s]`.
            public var entry: [String]
            /// Mean recall over the layer's heads.
            public var meanRecall: Double
            /// Summed tiles of the layer's heads.
            public var tiles: Int
        }
    }

    /// One searched layer.
    public struct Layer: Codable, Sendable {
        /// Position in the config (model order of the --layers folders).
        public var index: Int
        /// The calibration layer's folder.
        public var source: String
        /// Sequence length N (tokens).
        public var length: Int
        /// Query heads Hq.
        public var headsQ: Int
        /// Key/value heads Hkv.
        public var headsKV: Int
        /// Head dimension d.
        public var headDim: Int
        /// The inputs' dtype (`f16`, `bf16`, `f32`).
        public var dtype: String
        /// layer: the heads share heads x targetTiles; head: each head gets at most targetTiles.
        public var allocation: String
        /// Per-head budget and the dense causal kernel's tiles at this length.
        public var targetTiles: Int
        /// Tiles of the dense causal kernel at this length, R(R + 1) / 2 with R = ceil(N / 64).
        public var denseTiles: Int
        /// Mean recall of the chosen patterns.
        public var meanRecall: Double
        /// Mean covered density of the chosen patterns.
        public var meanDensity: Double
        /// Summed tiles of the chosen patterns (at most heads x targetTiles).
        public var tiles: Int
        /// Every query head, in head order.
        public var heads: [Head]
        /// The uniform vertical-slash comparison (nil when not computed or when none fits).
        public var uniformVerticalSlash: Uniform?
    }

    /// The search target in words (``SearchTarget/description``).
    public var target: String
    /// The device that scored the candidates.
    public var device: String
    /// How cost is counted.
    public var costModel = "64x64 tiles the kernel visits; each costs 64 * 64 * 4 * headDim FLOPs; cost = share of the dense causal kernel's R(R+1)/2 tiles"
    /// The searched layers, in config order.
    public var layers: [Layer]

    /// The report of `layers` searched for `target` on `device` (a device name).
    public init(layers: [LayerSearch], target: SearchTarget, device: String) {
        self.target = target.description
        self.device = device
        self.layers = layers.enumerated().map { index, layer in
            let p = layer.problem
            return Layer(
                index: index, source: layer.source, length: p.queryLength, headsQ: p.headsQ, headsKV: p.headsKV, headDim: p.headDim,
                dtype: p.inputDType.rawValue, allocation: layer.allocation.rawValue, targetTiles: layer.target.tiles, denseTiles: KernelCost.dense(length: p.queryLength).tiles,
                meanRecall: layer.meanRecall, meanDensity: layer.meanDensity, tiles: layer.totalTiles,
                heads: layer.heads.map {
                    Head(head: $0.head, chosen: Candidate($0.chosen), alternative: layer.alternative(head: $0).map(Candidate.init),
                         candidates: Self.front($0).map(Candidate.init), scored: $0.candidates.count, notes: $0.notes)
                },
                uniformVerticalSlash: layer.uniform.map { u in
                    Uniform(entry: Self.entry(u.pattern), meanRecall: u.meanRecall, meanDensity: u.meanDensity, tiles: u.totalTiles,
                            perHead: u.heads.map(Candidate.init),
                            tried: u.tried.map { Uniform.Tried(entry: Self.entry($0.pattern), meanRecall: $0.meanRecall, tiles: $0.tiles) })
                })
        }
    }

    /// The cost/recall Pareto front of a head's candidates, cheapest first, with the chosen one.
    static func front(_ head: HeadSearch) -> [SearchCandidate] {
        var best = -Double.infinity
        var front: [SearchCandidate] = []
        for c in head.candidates.sorted(by: { $0.cost.tiles != $1.cost.tiles ? $0.cost.tiles < $1.cost.tiles : SearchCandidate.ranksAbove($0, $1) })
        where c.recall > best || c.pattern == head.chosen.pattern {
            best = max(best, c.recall)
            front.append(c)
        }
        return front
    }

    static func entry(_ pattern: HeadPattern) -> [String] {
        switch pattern {
        case .dense: ["dense"]
        case .aShape(let sink, let window): ["stream_llm", "\(sink)", "\(window)"]
        case .verticalSlash(let v, let s): ["vertical_and_slash", "\(v)", "\(s)"]
        case .blockSparse(let blocks): ["block_sparse", "\(blocks)", "\(blocks)"]
        case .triShape(let sink, let window, let last): ["tri_shape", "\(sink)", "\(window)", "\(last)"]
        case .xAttention(let x): ["xattention", "\(x)"]
        case .flexPrefill(let f): ["flexprefill", "\(f)"]
        }
    }

    /// Pretty-printed JSON with sorted keys (stable for the same search), ending in a newline.
    /// Throws the `JSONEncoder`'s error (none is expected: every value is finite).
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Per layer: a row per head (chosen pattern, budgets, recall, density, FLOPs share, the
    /// best candidate of another kind), then the means against the uniform vertical-slash config.
    public func table() -> String {
        var out: [String] = [
            "target: \(target)", "cost: \(costModel)",
            "recall: mean share of each query's dense softmax mass inside the covered keys; density: covered share of the causal pairs",
            "budgets: sink/window (a-shape), vertical/slash (vertical-slash); best other kind: the best candidate of another pattern within what the head could spend",
        ]
        for layer in layers {
            out.append("")
            let share = Format.fixed(100 * Double(layer.targetTiles) / Double(max(layer.denseTiles, 1)), 1)
            let budget = layer.allocation == "layer" ? "budget \(layer.headsQ) x \(layer.targetTiles) tiles shared by the heads" : "budget \(layer.targetTiles) tiles per head"
            out.append("layer \(layer.index): \(layer.source)  N=\(layer.length) Hq=\(layer.headsQ) Hkv=\(layer.headsKV) d=\(layer.headDim) \(layer.dtype); \(budget) (\(share)% of dense \(layer.denseTiles) each)")
            let rows = layer.heads.map { head -> [String] in
                let c = head.chosen
                let other = head.alternative
                return ["\(head.head)", c.pattern, c.entry.dropFirst().joined(separator: "/"), Format.fixed(c.recall, 4),
                        Format.fixed(100 * c.density, 1) + "%", Format.fixed(100 * c.cost, 1) + "%",
                        other.map { "\($0.pattern) \($0.entry.dropFirst().joined(separator: "/")): \(Format.fixed($0.recall, 4))" } ?? "-"]
            }
            out.append(Table(header: ["head", "pattern", "budgets", "recall", "density", "FLOPs", "best other kind"], rows: rows).render())
            var summary = "mean recall \(Format.fixed(layer.meanRecall, 4)), density \(Format.fixed(100 * layer.meanDensity, 1))%, \(layer.tiles) tiles"
            if let u = layer.uniformVerticalSlash {
                summary += "; uniform vertical-slash \(u.entry.dropFirst().joined(separator: "/")): mean recall \(Format.fixed(u.meanRecall, 4)), density \(Format.fixed(100 * u.meanDensity, 1))%, \(u.tiles) tiles"
            }
            out.append(summary)
        }
        return out.joined(separator: "\n")
    }
}
