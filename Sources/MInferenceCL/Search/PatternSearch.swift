/// Offline, kernel-aware pattern search (MInference's `search_pattern`, docs/MINFERENCE.md
/// section 9, with its FLOPs equivalence made real): per query head, candidates of the three
/// patterns at measured kernel cost, scored by attention recall on a calibration input, then the
/// layer's budget spent where it keeps the most attention.
///
///   T = the target's cost in 64x64 tiles at the layer's length (KernelCost); levels L = f x T
///   A-shape:         per level and sink s of the ladder, the largest window w with cost(s, w) <= L
///                    (analytic: the tile lists of a_shape_attention)
///   vertical-slash:  per level and vertical budget v of the ladder, the largest slash budget
///                    S in 100...N whose cost measured on this head's input is <= L (the real
///                    estimate, top-k and index conversion; VerticalSlashProbe)
///   block-sparse:    upstream's 100 blocks, if they cost <= the top level (dense below N = 6400)
///   score:           recall on the device (AttentionRecall)
///   choice:          .layer: one candidate per head, summed cost <= heads x T, summed recall
///                    highest (BudgetAllocation); .head: per head the best candidate costing <= T
///
/// Every candidate is exactly what upstream runs for the entry written to the config: A-shape
/// budgets as they are, vertical-slash budgets after upstream's clamps (V >= 30, S >= 100 so
/// every forced diagonal wins, both <= N), block-sparse only with 100 blocks. Budgets are absolute
/// token counts, as the config format has no notion of N. Deterministic for the same input and
/// device.
public struct PatternSearch: Sendable {
    /// The engine whose device scores the candidates (and whose kernel configuration the
    /// vertical-slash and block-sparse pipelines use).
    public let engine: AttentionEngine
    /// What the search tries and how it spends the budget.
    public var options: SearchOptions

    /// A search on `engine`'s device with `options`.
    public init(engine: AttentionEngine, options: SearchOptions) {
        self.engine = engine
        self.options = options
    }

    /// Searches one calibration layer; `progress` receives short status lines. Throws
    /// ``AttentionError`` for invalid options or layer shapes, and ``AttentionError/budget(_:)``
    /// when no candidate (or, with `.layer` allocation, no combination) fits the target; device
    /// errors (``OpenCLError``, ``DeviceMemoryError``, ``ProgramBuildError``) as they occur.
    public func search(layer: CalibrationLayer, progress: (String) -> Void = { _ in }) throws -> LayerSearch {
        try options.validate()
        let problem = try layer.problem()
        let context = engine.context
        let n = problem.queryLength, heads = problem.headsQ
        let target = options.target.cost(length: n)
        let levels = options.levelTiles(target: target)
        progress("dense row statistics")
        let q = try DeviceTensor(context: context, copying: layer.q, label: "q")
        let k = try DeviceTensor(context: context, copying: layer.k, label: "k")
        let recall = try AttentionRecall(context: context, problem: problem, q: q, k: k)
        var candidates = [[SearchCandidate]](repeating: [], count: heads)
        var notes = [[String]](repeating: [], count: heads)

        // A-shape: analytic cost, one recall launch for every (head, sink, window).
        let aShapes = aShapeBudgets(length: n, levels: levels)
        progress("a-shape recall (\(aShapes.count * heads) candidates)")
        let aShapeSlots = aShapes.flatMap { budget in (0..<heads).map { (head: $0, sink: budget.sink, window: budget.window, denseFrom: n) } }
        for (slot, value) in zip(aShapeSlots, try recall.recall(aShape: aShapeSlots)) {
            candidates[slot.head].append(SearchCandidate(
                pattern: .aShape(sink: slot.sink, window: slot.window), cost: KernelCost.aShape(length: n, sink: slot.sink, window: slot.window),
                coveredPairs: AShapeKernel.coveredPairs(length: n, sink: slot.sink, window: slot.window), recall: value))
        }
        if aShapes.isEmpty, !options.sinks.isEmpty { for h in 0..<heads { notes[h].append("a-shape: no sink of the ladder fits") } }

        // Vertical-slash: budgets measured per head and level, then scored.
        let verticals = Array(Set(options.verticals.map { min(n, max($0, PatternReference.minimumVertical)) })).sorted()
        var probe: VerticalSlashProbe?
        if !verticals.isEmpty {
            progress("vertical-slash estimate")
            let made = try VerticalSlashProbe(engine: engine, problem: problem, q: q, k: k)
            probe = made
            progress("vertical-slash budgets (\(levels.count) levels x \(verticals.count) vertical budgets x \(heads) heads)")
            let groups = levels.flatMap { level in
                verticals.flatMap { v in (0..<heads).map { VerticalSlashProbe.Group(heads: [$0], vertical: v, limit: level) } }
            }
            let slashes = try made.largestSlash(groups, lowest: PatternReference.forcedSlashes)
            var seen = Set<VerticalSlashProbe.Variant>()
            let variants = zip(groups, slashes).compactMap { group, slash in
                slash.map { VerticalSlashProbe.Variant(head: group.heads[0], vertical: group.vertical, slash: $0) }
            }.filter { seen.insert($0).inserted }
            progress("vertical-slash recall (\(variants.count) candidates)")
            for (variant, (measurement, value)) in zip(variants, try made.score(variants, recall: recall)) {
                candidates[variant.head].append(SearchCandidate(
                    pattern: .verticalSlash(vertical: variant.vertical, slash: variant.slash), cost: measurement.cost,
                    coveredPairs: measurement.coveredPairs, recall: value))
            }
            for h in 0..<heads where !variants.contains(where: { $0.head == h }) {
                notes[h].append("vertical-slash: even \(verticals[0]) verticals and \(min(n, PatternReference.forcedSlashes)) slashes cost more than \(levels.last!) tiles")
            }
        }

        // Block-sparse: upstream's 100 blocks, when they fit.
        if options.blockSparse {
            let cost = KernelCost.blockSparse(length: n, blocks: 100)
            if cost.tiles <= levels.last! {
                progress("block-sparse recall")
                for candidate in try blockSparseCandidates(problem: problem, q: q, k: k, recall: recall) {
                    candidates[candidate.head].append(candidate.candidate)
                }
            } else {
                for h in 0..<heads {
                    notes[h].append("block-sparse: upstream's 100 blocks cost \(cost.tiles) tiles (\(Format.fixed(100 * cost.share, 1))% of dense) at N = \(n), more than \(levels.last!)")
                }
            }
        }

        var uniform: UniformVerticalSlash?
        if options.uniformBaseline || (options.allocation == .layer && options.uniformCandidates), let probe {
            progress("uniform vertical-slash baseline")
            uniform = try uniformBaseline(probe: probe, recall: recall, verticals: verticals, budget: heads * target.tiles)
            // With a shared budget the uniform config is one of the allocations: offer its budgets.
            if options.allocation == .layer, options.uniformCandidates, let uniform {
                for (h, candidate) in uniform.heads.enumerated() where !candidates[h].contains(where: { $0.pattern == candidate.pattern }) {
                    candidates[h].append(candidate)
                }
            }
        }

        progress("choosing")
        let ranked = candidates.map { $0.sorted(by: SearchCandidate.ranksAbove) }
        var chosen: [Int]
        switch options.allocation {
        case .head:
            chosen = try ranked.enumerated().map { h, list in
                guard let best = list.firstIndex(where: { $0.cost.tiles <= target.tiles }) else {
                    throw AttentionError.budget("\(layer.folder): head \(h): no candidate fits \(options.target) (\(target)); \(notes[h].joined(separator: "; ")); raise the target")
                }
                return best
            }
        case .layer:
            guard let picked = BudgetAllocation.choose(costs: ranked.map { $0.map(\.cost.tiles) }, recalls: ranked.map { $0.map(\.recall) },
                                                       budget: heads * target.tiles) else {
                throw AttentionError.budget("\(layer.folder): no combination of candidates fits \(heads) x \(target); \(Set(notes.flatMap { $0 }).sorted().joined(separator: "; ")); raise the target")
            }
            chosen = picked
        }
        let results = (0..<heads).map { HeadSearch(head: $0, candidates: ranked[$0], chosenIndex: chosen[$0], notes: notes[$0]) }
        return LayerSearch(source: layer.folder, problem: problem, target: target, allocation: options.allocation, heads: results,
                           uniform: options.uniformBaseline ? uniform : nil)
    }

    /// The A-shape budgets that fit the levels: per level and sink of the ladder (below N), the
    /// largest window whose cost fits, found by bisection (the cost grows with the window).
    func aShapeBudgets(length n: Int, levels: [Int]) -> [(sink: Int, window: Int)] {
        var sinks = options.sinks
        if case .aShape(let sink, _) = options.target { sinks.append(sink) }
        var seen = Set<[Int]>()
        return Array(Set(sinks.filter { $0 < n })).sorted().flatMap { sink in
            levels.compactMap { level -> (sink: Int, window: Int)? in
                func fits(_ window: Int) -> Bool { KernelCost.aShape(length: n, sink: sink, window: window).tiles <= level }
                guard fits(1) else { return nil }
                if fits(n) { return (sink, n) }  // windows past N change nothing
                var low = 1, high = n  // fits(low), !fits(high)
                while high - low > 1 {
                    let middle = (low + high) / 2
                    if fits(middle) { low = middle } else { high = middle }
                }
                return (sink, low)
            }
        }.filter { seen.insert([$0.sink, $0.window]).inserted }
    }

    /// Upstream's block-sparse (100 blocks) for every head: selection, cost and recall.
    func blockSparseCandidates(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor,
                               recall: AttentionRecall) throws -> [(head: Int, candidate: SearchCandidate)] {
        let context = engine.context, n = problem.queryLength
        let all = (0..<problem.headsQ).map { Int32($0) }
        let pipeline = BlockSparsePipeline(context: context, problem: problem, config: engine.kernelConfig(for: problem), slots: all,
                                           blocks: all.map { _ in 100 }, scoring: DeviceProfile.profile(for: context.device.info).blockScores)
        var events = PhaseEvents()
        let slotBuffer = try DeviceBuffer(context: context, copying: all, label: "block-sparse heads")
        let selection = try pipeline.select(q: q, k: k, slotBuffer: slotBuffer, events: &events)
        let values = try recall.recall(blockSparse: all, selection: selection, blocksPerHead: pipeline.queryBlocks)
        let indices = try BlockSparseHeadIndices.download(selection, pipeline: pipeline, heads: all)
        return (0..<problem.headsQ).map { h in
            (h, SearchCandidate(pattern: HeadPattern.defaultBlockSparse, cost: HeadCoverage.blockSparse(indices[h]).cost(length: n),
                                coveredPairs: indices[h].coveredPairs(length: n), recall: values[h]))
        }
    }

    /// The best vertical-slash budget pair shared by every head whose summed measured cost is
    /// at most `budget`: per vertical budget the largest common slash budget, then the pair with
    /// the highest mean recall.
    func uniformBaseline(probe: VerticalSlashProbe, recall: AttentionRecall, verticals: [Int], budget: Int) throws -> UniformVerticalSlash? {
        let heads = recall.problem.headsQ
        let groups = verticals.map { VerticalSlashProbe.Group(heads: Array(0..<heads), vertical: $0, limit: budget) }
        let slashes = try probe.largestSlash(groups, lowest: PatternReference.forcedSlashes)
        let pairs = zip(verticals, slashes).compactMap { v, s in s.map { (vertical: v, slash: $0) } }
        guard !pairs.isEmpty else { return nil }
        let variants = pairs.flatMap { pair in (0..<heads).map { VerticalSlashProbe.Variant(head: $0, vertical: pair.vertical, slash: pair.slash) } }
        let scored = try probe.score(variants, recall: recall)
        var best: UniformVerticalSlash?
        var tried: [(pattern: HeadPattern, meanRecall: Double, tiles: Int)] = []
        for (p, pair) in pairs.enumerated() {
            let pattern = HeadPattern.verticalSlash(vertical: pair.vertical, slash: pair.slash)
            let perHead = scored[(p * heads)..<((p + 1) * heads)].map { measurement, value in
                SearchCandidate(pattern: pattern, cost: measurement.cost, coveredPairs: measurement.coveredPairs, recall: value)
            }
            let candidate = UniformVerticalSlash(pattern: pattern, heads: perHead, tried: [])
            tried.append((pattern, candidate.meanRecall, candidate.totalTiles))
            if best == nil || candidate.meanRecall > best!.meanRecall { best = candidate }
        }
        best?.tried = tried
        return best
    }

    /// The config of searched layers in model order (the chosen patterns, recall as the score).
    public static func config(_ layers: [LayerSearch]) -> PatternConfig {
        PatternConfig(layers: layers.map { $0.heads.map(\.chosen.pattern) }, scores: layers.map { $0.heads.map { $0.chosen.recall } })
    }
}
