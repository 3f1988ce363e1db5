import FoundationEssentials
import MInferenceCL
import Testing

/// The pattern search end to end on real SmolLM2 attention (the fixtures): the written config
/// loads back through PatternConfig and means, when run, exactly what the search scored; the
/// budget holds; the result is deterministic; the allocation is exact.
@Suite("Search: configs, budgets and determinism")
struct SearchTests {
    /// Small ladders keep the search fast on PoCL; levels up to 3x reach dense cost, so
    /// upstream's 100-block block-sparse (dense at these lengths) is offered too.
    static func options(_ allocation: SearchOptions.Allocation, density: Double = 0.7) -> SearchOptions {
        SearchOptions(target: .density(density), allocation: allocation, levels: [0.5, 1, 3], sinks: [64, 128],
                      verticals: [30, 128, 512])
    }

    static func layers() throws -> [CalibrationLayer] {
        try ["smollm2-layer03-n300", "smollm2-layer20-n777"].map { try CalibrationLayer.load(folder: fixturePath($0), values: true) }
    }

    @Test("The written config loads back and runs exactly what was scored", arguments: SearchOptions.Allocation.allCases)
    func configRoundTrip(_ allocation: SearchOptions.Allocation) throws {
        let engine = try TestDevice.engine()
        let layers = try Self.layers()
        let search = PatternSearch(engine: engine, options: Self.options(allocation))
        let results = try layers.map { try search.search(layer: $0) }
        let path = FileManager.default.temporaryDirectory.path + "/minference-search-\(allocation.rawValue)-\(UInt64.random(in: 0..<UInt64.max)).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PatternSearch.config(results).write(to: path)
        let loaded = try PatternConfig.load(path: path)
        #expect(loaded.layers == results.map { $0.heads.map(\.chosen.pattern) })
        #expect(loaded.scores == results.map { $0.heads.map { Optional($0.chosen.recall) } })

        for (index, (layer, result)) in zip(layers, results).enumerated() {
            let problem = try layer.problem()
            let n = problem.queryLength
            let plan = LayerPlan(heads: try loaded.patterns(layer: index, heads: problem.headsQ))
            let (_, report) = try engine.run(q: layer.q, k: layer.k, v: layer.v!, plan: plan,
                                             options: SparseOptions(denseFallback: .never, collectIndices: true))
            let recall = try AttentionRecall(context: engine.context, problem: problem,
                                             q: try DeviceTensor(context: engine.context, copying: layer.q),
                                             k: try DeviceTensor(context: engine.context, copying: layer.k))
            let coverages = try (0..<problem.headsQ).map { try HeadCoverage(report: report, head: $0) }
            let recalls = try recall.recall(coverages.enumerated().map { ($0.offset, $0.element) })
            for (h, head) in result.heads.enumerated() {
                #expect(coverages[h].cost(length: n) == head.chosen.cost, "layer \(index) head \(h) \(head.chosen.pattern)")
                #expect(report.coveredPairs[h] == head.chosen.coveredPairs, "layer \(index) head \(h) \(head.chosen.pattern)")
                #expect(recalls[h] == head.chosen.recall, "layer \(index) head \(h) \(head.chosen.pattern)")
            }
            // The budget holds.
            switch allocation {
            case .head: #expect(result.heads.allSatisfy { $0.chosen.cost.tiles <= result.target.tiles })
            case .layer: #expect(result.totalTiles <= result.budgetTiles)
            }
            for head in result.heads {
                #expect(head.candidates.allSatisfy { $0.recall >= 0 && $0.recall <= 1 })
                if case .verticalSlash(let v, let s) = head.chosen.pattern { #expect(v >= 30 && s >= 100 && v <= n && s <= n) }
                if case .blockSparse(let blocks) = head.chosen.pattern { #expect(blocks == 100) }
            }
        }
    }

    @Test("A shared budget never does worse than the uniform vertical-slash config, nor than equal shares")
    func layerAllocationBeatsBaselines() throws {
        let engine = try TestDevice.engine()
        let layer = try CalibrationLayer.load(folder: fixturePath("smollm2-layer20-n777"))
        let shared = try PatternSearch(engine: engine, options: Self.options(.layer)).search(layer: layer)
        let perHead = try PatternSearch(engine: engine, options: Self.options(.head)).search(layer: layer)
        let uniform = try #require(shared.uniform)
        #expect(uniform.totalTiles <= shared.budgetTiles)
        #expect(shared.meanRecall >= uniform.meanRecall)
        #expect(shared.meanRecall >= perHead.meanRecall)
        // Per head, the equal-share choice is the best candidate within the target.
        for head in perHead.heads {
            let best = head.candidates.filter { $0.cost.tiles <= perHead.target.tiles }.map(\.recall).max()
            #expect(head.chosen.recall == best)
        }
        // Block-sparse is dense at N = 777: it is only offered at the top level (3x the target, capped at dense).
        #expect(shared.heads.allSatisfy { head in head.candidates.contains { $0.pattern == .blockSparse(blocks: 100) } })
        #expect(perHead.heads.allSatisfy { head in head.notes.contains { $0.hasPrefix("block-sparse") } })
    }

    @Test("The same input gives the same report")
    func deterministic() throws {
        let engine = try TestDevice.engine()
        let layer = try CalibrationLayer.load(folder: fixturePath("smollm2-layer03-n300"))
        let search = PatternSearch(engine: engine, options: Self.options(.layer))
        let first = SearchReport(layers: [try search.search(layer: layer)], target: search.options.target, device: "test")
        let second = SearchReport(layers: [try search.search(layer: layer)], target: search.options.target, device: "test")
        #expect(try first.json() == second.json())
        let config = try PatternSearch.config([try search.search(layer: layer)]).encoded()
        #expect(try PatternSearch.config([try search.search(layer: layer)]).encoded() == config)
    }

    @Test("Budget allocation is the exact optimum (brute force on small cases)", arguments: 0..<20)
    func allocationIsOptimal(seed: Int) {
        var random = SeededRandom(seed: UInt64(seed) &+ 99)
        let heads = Int.random(in: 1...4, using: &random)
        let costs = (0..<heads).map { _ in (0..<Int.random(in: 1...4, using: &random)).map { _ in Int.random(in: 1...20, using: &random) } }
        let recalls = costs.map { $0.map { _ in Double(Int.random(in: 0...1000, using: &random)) / 1000 } }
        let budget = Int.random(in: 0...50, using: &random)
        var best: Double?
        func walk(_ h: Int, _ cost: Int, _ value: Double) {
            if h == heads { if cost <= budget, value > (best ?? -1) { best = value }; return }
            for c in costs[h].indices { walk(h + 1, cost + costs[h][c], value + recalls[h][c]) }
        }
        walk(0, 0, 0)
        let chosen = BudgetAllocation.choose(costs: costs, recalls: recalls, budget: budget)
        #expect((chosen == nil) == (best == nil), "costs \(costs) budget \(budget)")
        if let chosen, let best {
            #expect(zip(costs, chosen).reduce(0) { $0 + $1.0[$1.1] } <= budget)
            #expect(abs(zip(recalls, chosen).reduce(0.0) { $0 + $1.0[$1.1] } - best) < 1e-12)
        }
    }

    @Test("Search inputs are checked")
    func refusals() throws {
        let engine = try TestDevice.engine()
        let layer = try CalibrationLayer.load(folder: fixturePath("smollm2-layer03-n300"))
        #expect(throws: AttentionError.self) { try PatternSearch(engine: engine, options: SearchOptions(target: .density(0))).search(layer: layer) }
        #expect(throws: AttentionError.self) {
            try PatternSearch(engine: engine, options: SearchOptions(target: .density(0.3), levels: [])).search(layer: layer)
        }
        #expect(throws: TensorFileError.self) { try CalibrationLayer.load(folder: "/nonexistent/layer") }
    }
}
