/// Vertical-slash budgets measured on a calibration input: what a head's kernel would cost (and
/// cover) with given budgets, from the real pipeline (VerticalSlashPipeline: estimate, top-k,
/// index conversion), without running attention.
///
/// A vertical-slash head's cost depends on its input: slashes that cluster share 64-key windows,
/// verticals inside a slash window are dropped. So budgets are chosen by measurement: the
/// estimate runs once per head, and every probe replays only top-k and the conversion for many
/// (head, vertical, slash) variants at once.
final class VerticalSlashProbe {
    /// One head with clamped budgets (V = min(N, max(v, 30)), S = min(N, max(s, 50))).
    struct Variant: Hashable {
        var head: Int
        var vertical: Int
        var slash: Int
    }

    /// What one variant's kernel visits and covers.
    struct Measurement {
        var cost: KernelCost
        var coveredPairs: Int
    }

    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    /// Column scores of every head, then its diagonal scores: [2 * heads, N] fp32.
    let scores: DeviceBuffer
    let estimation: DeviceProfile.EstimationBackend
    /// Bytes of index lists one conversion launch may allocate (chunks keep to it).
    let chunkBytes: Int

    var n: Int { problem.queryLength }
    var heads: Int { problem.batch * problem.headsQ }
    var rowBlocks: Int { KernelCost.rowBlocks(length: n) }

    /// Runs the estimate of every query head of q and k.
    init(engine: AttentionEngine, problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor) throws {
        context = engine.context
        self.problem = problem
        config = engine.kernelConfig(for: problem)
        let all = (0..<(problem.batch * problem.headsQ)).map { Int32($0) }
        estimation = DeviceProfile.profile(for: context.device.info).estimation
        let pipeline = VerticalSlashPipeline(context: context, problem: problem, config: config, slots: all,
                                             budgets: all.map { _ in (vertical: 1, slash: 1) },
                                             estimation: estimation)
        var events = PhaseEvents()
        let slotBuffer = try DeviceBuffer(context: context, copying: all, label: "probe heads")
        scores = try pipeline.estimate(q: q, k: k, slotBuffer: slotBuffer, events: &events)
        let allocation = context.device.info.maxAllocationBytes
        chunkBytes = min(256 << 20, allocation > 0 ? allocation / 2 : 256 << 20)
    }

    /// Builds the index lists of `variants` in chunks that fit `chunkBytes`, handing each chunk
    /// (its range in `variants`, the pipeline and its device index lists) to `body`.
    func withIndices(_ variants: [Variant],
                     _ body: (Range<Int>, VerticalSlashPipeline, VerticalSlashPipeline.Indices) throws -> Void) throws {
        var first = 0
        while first < variants.count {
            var last = first + 1, maxV = variants[first].vertical, maxS = variants[first].slash
            while last < variants.count {
                let v = max(maxV, variants[last].vertical), s = max(maxS, variants[last].slash)
                guard (last + 1 - first) * rowBlocks * (v + s + 4) * 4 <= chunkBytes else { break }
                (maxV, maxS, last) = (v, s, last + 1)
            }
            let chunk = first..<last
            let count = chunk.count, rowBytes = n * 4
            // Each variant's score rows: its head's column row, then (after all of them) its diagonal row.
            let replicated = try DeviceBuffer(context: context, byteCount: 2 * count * rowBytes, label: "probe scores")
            for (c, variant) in variants[chunk].enumerated() {
                try replicated.copy(from: scores, sourceOffset: variant.head * rowBytes, offset: c * rowBytes, byteCount: rowBytes)
                try replicated.copy(from: scores, sourceOffset: (heads + variant.head) * rowBytes, offset: (count + c) * rowBytes,
                                    byteCount: rowBytes)
            }
            let pipeline = VerticalSlashPipeline(context: context, problem: problem, config: config,
                                                 slots: variants[chunk].map { Int32($0.head) },
                                                 budgets: variants[chunk].map { ($0.vertical, $0.slash) }, estimation: estimation)
            var events = PhaseEvents()
            let indices = try pipeline.buildIndices(scores: replicated, events: &events)
            try body(chunk, pipeline, indices)
            first = last
        }
    }

    /// Cost and covered pairs of each variant.
    func measure(_ variants: [Variant]) throws -> [Measurement] {
        var out: [Measurement] = []
        out.reserveCapacity(variants.count)
        try withIndices(variants) { chunk, _, indices in
            out += try measurements(of: indices, count: chunk.count)
        }
        return out
    }

    /// Cost, covered pairs and recall of each variant.
    func score(_ variants: [Variant], recall: AttentionRecall) throws -> [(Measurement, Double)] {
        var out: [(Measurement, Double)] = []
        out.reserveCapacity(variants.count)
        try withIndices(variants) { chunk, _, indices in
            let measured = try measurements(of: indices, count: chunk.count)
            let recalls = try recall.recall(verticalSlash: variants[chunk].map { Int32($0.head) }, indices: indices)
            out += zip(measured, recalls).map { ($0, $1) }
        }
        return out
    }

    /// Cost and covered pairs of the `count` slots of one chunk's index lists.
    private func measurements(of indices: VerticalSlashPipeline.Indices, count: Int) throws -> [Measurement] {
        let r = rowBlocks
        let blockCount = try indices.blockCount.read(as: Int32.self, count: count * r)
        let columnCount = try indices.columnCount.read(as: Int32.self, count: count * r)
        let pairs = try indices.coveredPairs.read(as: Int64.self, count: count * r)
        return (0..<count).map { c in
            let rows = (c * r)..<((c + 1) * r)
            return Measurement(cost: KernelCost.verticalSlash(length: n, blockCount: blockCount[rows], columnCount: columnCount[rows]),
                               coveredPairs: Int(pairs[rows].reduce(0, +)))
        }
    }

    /// A set of heads that share one vertical budget and one slash budget, with a cap on the
    /// sum of their measured costs (one head: a per-head search; all heads: a uniform config).
    struct Group {
        var heads: [Int]
        var vertical: Int
        var limit: Int
    }

    /// For each group, the largest slash budget in `lowest...N` whose measured total cost is at
    /// most the group's limit (bisection over all groups at once: one probe per step), or nil
    /// when even `lowest` costs more. The cost grows with the slash budget up to the quirks of
    /// the index conversion, so the result is a budget measured to fit, next to one that did not.
    func largestSlash(_ groups: [Group], lowest: Int) throws -> [Int?] {
        let lowest = min(max(lowest, PatternReference.minimumSlash), n)
        let vertical = groups.map { min(n, max($0.vertical, PatternReference.minimumVertical)) }
        func fits(_ slashes: [(group: Int, slash: Int)]) throws -> [Bool] {
            let variants = slashes.flatMap { g, s in groups[g].heads.map { Variant(head: $0, vertical: vertical[g], slash: s) } }
            let costs = try measure(variants).map(\.cost.tiles)
            var offset = 0
            return slashes.map { g, _ in
                let total = costs[offset..<(offset + groups[g].heads.count)].reduce(0, +)
                offset += groups[g].heads.count
                return total <= groups[g].limit
            }
        }
        var low = [Int?](repeating: nil, count: groups.count)  // largest slash known to fit
        var high = [Int](repeating: n + 1, count: groups.count)  // smallest slash known not to fit
        let ends = try fits(groups.indices.flatMap { [($0, lowest), ($0, n)] })
        for g in groups.indices where ends[2 * g] {
            if ends[2 * g + 1] { low[g] = n } else { (low[g], high[g]) = (lowest, n) }
        }
        while true {
            let open = groups.indices.filter { low[$0] != nil && high[$0] - low[$0]! > 1 }
            if open.isEmpty { break }
            let middles = open.map { ($0, (low[$0]! + high[$0]) / 2) }
            for ((g, s), ok) in zip(middles, try fits(middles)) {
                if ok { low[g] = s } else { high[g] = s }
            }
        }
        return low
    }
}
