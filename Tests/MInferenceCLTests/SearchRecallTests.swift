@testable import MInferenceCL
import Testing

/// The search's measurements against independent references: recall on the device (recall.cl)
/// against float64 `ReferenceAttention.recall` over `PatternReference`'s covered keys, host
/// coverage ranges against the same keys, and the tile cost model against tiles counted from the
/// reference index lists and covered sets.
@Suite("Search: recall and cost against the float64 reference")
struct SearchRecallTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var headsQ: Int
        var headsKV: Int
        var length: Int
        var headDim: Int
        var dtype: DType

        var testDescription: String { "Hq\(headsQ)/Hkv\(headsKV) N\(length) d\(headDim) \(dtype)" }
    }

    static let cases: [Case] = [
        Case(headsQ: 2, headsKV: 1, length: 1, headDim: 64, dtype: .f32),
        Case(headsQ: 4, headsKV: 2, length: 333, headDim: 64, dtype: .f32),
        Case(headsQ: 9, headsKV: 3, length: 130, headDim: 64, dtype: .f16),
        Case(headsQ: 2, headsKV: 2, length: 200, headDim: 128, dtype: .bf16),
        Case(headsQ: 3, headsKV: 1, length: 97, headDim: 96, dtype: .f32),
    ]

    /// Every pattern kind in one layer, with budgets that are sparse at these lengths.
    static func plan(heads: Int) -> LayerPlan {
        let patterns: [HeadPattern] = [.aShape(sink: 5, window: 70), .verticalSlash(vertical: 40, slash: 100), .blockSparse(blocks: 2),
                                       .dense, .aShape(sink: 64, window: 1), .verticalSlash(vertical: 31, slash: 120)]
        return LayerPlan(heads: (0..<heads).map { patterns[$0 % patterns.count] })
    }

    /// The float64 reference's covered keys of `head` at query `i`, built from the run's selection
    /// (the reference conversion, not the device's index lists).
    static func referenceKeys(report: LayerResult, head: Int, query i: Int, length n: Int) -> [Int] {
        switch report.executed[head] {
        case .dense: return Array(0...i)
        case .aShape(let sink, let window): return PatternReference.coveredKeys(aShapeSink: sink, window: window, query: i)
        case .verticalSlash:
            let index = report.indices.verticalSlash.first { $0.head == head }!
            let converted = PatternReference.verticalSlashIndex(verticals: index.verticals.map(Int.init),
                                                                slashOffsets: index.slashOffsets.map(Int.init), length: n)
            return PatternReference.coveredKeys(index: converted, query: i)
        case .blockSparse:
            let index = report.indices.blockSparse.first { $0.head == head }!
            return PatternReference.coveredKeys(blockSelection: index.selected.map { $0.map(Int.init) }, query: i, length: n)
        case .triShape(let sink, let window, let last):
            return i >= n - min(last, n) ? Array(0...i) : PatternReference.coveredKeys(aShapeSink: sink, window: window, query: i)
        case .xAttention, .flexPrefill:
            let index = report.indices.xAttention.first { $0.head == head } ?? report.indices.flexPrefill.first { $0.blocks.head == head }!.blocks
            let size = index.blockSize
            return (0...i).filter { index.selected[i / size].contains(Int32($0 / size)) }
        }
    }

    @Test(arguments: cases)
    func recallMatchesReference(_ c: Case) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: c.headsQ, headsKV: c.headsKV, queryLength: c.length, keyLength: c.length,
                                           headDim: c.headDim, inputDType: c.dtype)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(c.length * 7 + c.headsQ), scale: 1.5)
        let (_, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: Self.plan(heads: c.headsQ),
                                         options: SparseOptions(denseFallback: .never, collectIndices: true, estimation: .fused))
        let context = engine.context
        let recall = try AttentionRecall(context: context, problem: problem, q: try DeviceTensor(context: context, copying: inputs.q),
                                         k: try DeviceTensor(context: context, copying: inputs.k))
        let coverages = try (0..<c.headsQ).map { (head: $0, coverage: try HeadCoverage(report: report, head: $0)) }
        let device = try recall.recall(coverages)
        let reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
        let n = c.length
        for head in 0..<c.headsQ {
            var sum = 0.0
            for i in 0..<n { sum += reference.recall(head: head, query: i, keys: Self.referenceKeys(report: report, head: head, query: i, length: n)) }
            let expected = sum / Double(n)
            #expect(abs(device[head] - expected) <= 2e-5, "head \(head) \(report.executed[head]): device \(device[head]), float64 \(expected)")
            #expect(device[head] <= 1 && device[head] > 0)
        }
        // The dense coverage has recall 1; a pattern that drops keys has less.
        if let dense = report.executed.firstIndex(of: .dense) { #expect(abs(device[dense] - 1) < 1e-6) }
        // Launches split into one slot each give the same numbers.
        let split = try AttentionRecall(context: context, problem: problem, q: try DeviceTensor(context: context, copying: inputs.q),
                                        k: try DeviceTensor(context: context, copying: inputs.k), launchFLOPs: 1)
        #expect(try split.recall(coverages) == device)
    }

    @Test("Host coverage ranges are the reference's covered keys", arguments: [1, 63, 64, 65, 333])
    func coverageRanges(n: Int) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 6, headsKV: 2, queryLength: n, keyLength: n, headDim: 64, inputDType: .f32)
        let inputs = try RandomInputs(problem: problem, seed: UInt64(n), scale: 1.5)
        let (_, report) = try engine.run(q: inputs.q, k: inputs.k, v: inputs.v, plan: Self.plan(heads: 6),
                                         options: SparseOptions(denseFallback: .never, collectIndices: true))
        for head in 0..<6 {
            let coverage = try HeadCoverage(report: report, head: head)
            var pairs = 0
            for i in 0..<n {
                let keys = coverage.ranges(query: i, length: n).flatMap { Array($0) }
                #expect(keys.sorted() == Self.referenceKeys(report: report, head: head, query: i, length: n), "head \(head) query \(i)")
                pairs += keys.count
            }
            #expect(coverage.coveredPairs(length: n) == pairs)
            #expect(pairs == report.coveredPairs[head], "head \(head): covered pairs \(pairs), the layer run reported \(report.coveredPairs[head])")
        }
    }

    /// Tiles of an A-shape row block counted from the reference's covered keys: the union of
    /// the block's rows' keys, its sink part in 64-key tiles and its window part in 64-key tiles.
    static func countedAShapeTiles(length n: Int, sink: Int, window: Int) -> Int {
        var tiles = 0
        for start in stride(from: 0, to: n, by: 64) {
            let end = min(start + 64, n)
            var union = Set<Int>()
            for i in start..<end { union.formUnion(PatternReference.coveredKeys(aShapeSink: min(sink, n), window: min(window, n), query: i)) }
            let sinkKeys = union.filter { $0 < min(sink, end) }.count
            tiles += (sinkKeys + 63) / 64 + (union.count - sinkKeys + 63) / 64
        }
        return tiles
    }

    @Test("A-shape and block-sparse cost against counted tiles", arguments: [1, 64, 65, 200, 333, 1024])
    func analyticCost(n: Int) {
        for (sink, window) in [(1, 1), (4, 16), (64, 64), (100, 129), (7, 500), (500, 3), (2000, 2000)] {
            #expect(KernelCost.aShape(length: n, sink: sink, window: window).tiles == Self.countedAShapeTiles(length: n, sink: sink, window: window),
                    "N \(n) sink \(sink) window \(window)")
        }
        for blocks in [1, 2, 5, 100] {
            let selection = (0..<((n + 63) / 64)).map { m in Array(0...m).suffix(min(blocks, n / 64 + 1)) }
            #expect(KernelCost.blockSparse(length: n, blocks: blocks).tiles == selection.reduce(0) { $0 + $1.count })
        }
        let dense = KernelCost.dense(length: n)
        #expect(dense.share == 1)
        #expect(KernelCost.aShape(length: n, sink: n, window: n).tiles == dense.tiles)
        #expect(KernelCost.blockSparse(length: n, blocks: n).tiles == dense.tiles)
        // FLOPs: 4 d per slot of every tile; at least what dense causal attention computes.
        let problem = try! AttentionProblem(headsQ: 1, headsKV: 1, queryLength: n, keyLength: n, headDim: 64, inputDType: .f16)
        #expect(dense.flops(headDim: 64) == Double(dense.tiles) * 64 * 64 * 4 * 64)
        #expect(dense.flops(headDim: 64) >= problem.denseFLOPs)
        if n % 64 == 0 {  // whole row blocks: only the upper halves of the diagonal tiles are wasted
            let r = n / 64
            #expect(dense.flops(headDim: 64) - problem.denseFLOPs == Double(r * (64 * 64 - 64 * 65 / 2)) * 4 * 64)
        }
    }

    @Test("Vertical-slash cost of a layer run against the reference conversion's blocks")
    func verticalSlashCost() throws {
        let engine = try TestDevice.engine()
        let folder = fixturePath("smollm2-layer20-n777")
        let q = try NPYFile.read(folder + "/q.npy"), k = try NPYFile.read(folder + "/k.npy"), v = try NPYFile.read(folder + "/v.npy")
        let n = q.shape[1]
        let plan = LayerPlan(heads: [.verticalSlash(vertical: 30, slash: 100), .verticalSlash(vertical: 100, slash: 200),
                                     .verticalSlash(vertical: 300, slash: 400), .verticalSlash(vertical: 777, slash: 777),
                                     .verticalSlash(vertical: 64, slash: 150), .verticalSlash(vertical: 30, slash: 300),
                                     .verticalSlash(vertical: 500, slash: 100), .verticalSlash(vertical: 40, slash: 120),
                                     .verticalSlash(vertical: 200, slash: 50)])
        let (_, report) = try engine.run(q: q, k: k, v: v, plan: plan, options: SparseOptions(denseFallback: .never, collectIndices: true))
        for index in report.indices.verticalSlash {
            let converted = PatternReference.verticalSlashIndex(verticals: index.verticals.map(Int.init),
                                                                slashOffsets: index.slashOffsets.map(Int.init), length: n)
            var counted = 0
            for m in 0..<converted.rowBlocks {
                counted += converted.blockOffsets(rowBlock: m).count + (converted.columns(rowBlock: m).count + 63) / 64
            }
            let cost = HeadCoverage.verticalSlash(index).cost(length: n)
            #expect(cost.tiles == counted, "head \(index.head)")
            #expect(report.coveredPairs[index.head] <= cost.tiles * 64 * 64)
        }
        // Full budgets cover everything, at more tiles than dense (windows overhang the diagonal).
        let full = HeadCoverage.verticalSlash(report.indices.verticalSlash[3])
        #expect(full.coveredPairs(length: n) == n * (n + 1) / 2)
        #expect(full.cost(length: n).tiles >= KernelCost.dense(length: n).tiles)
    }

    @Test("recall.cl and attention_map.cl build with no -D (and recall.cl with the largest RECALL_KEYS)",
          arguments: [("recall.cl", [:]), ("attention_map.cl", [:]), ("recall.cl", ["RECALL_KEYS": "64", "INPUT_DTYPE": "DTYPE_BF16"])])
    func kernelsBuild(_ file: String, _ defines: [String: String]) throws {
        let engine = try TestDevice.engine()
        _ = try engine.context.program(try KernelSource.named(file), options: BuildOptions(defines: defines))
    }

    @Test("Search targets")
    func targets() throws {
        #expect(try SearchTarget(budget: "1k+4k") == .aShape(sink: 1024, window: 4096))
        #expect(try SearchTarget(budget: "128+3968") == .aShape(sink: 128, window: 3968))
        #expect(try SearchTarget(budget: "64K+1") == .aShape(sink: 65536, window: 1))
        for bad in ["", "1k", "1k+", "+4k", "1k+4k+1", "-1+4", "0+4", "1.5k+4k", "k+4", "99999999999+1"] {
            #expect(throws: AttentionError.self, "\(bad)") { try SearchTarget(budget: bad) }
        }
        #expect(SearchTarget.aShape(sink: 1024, window: 4096).cost(length: 32768) == KernelCost.aShape(length: 32768, sink: 1024, window: 4096))
        #expect(SearchTarget.density(0.5).cost(length: 2048).tiles == 264)
        #expect(SearchTarget.density(1e-9).cost(length: 2048).tiles == 32)
        for bad in [0.0, -0.1, 1.5, .nan] { #expect(throws: AttentionError.self) { try SearchTarget.density(bad).validate() } }
    }
}
