/// A whole layer with per-head patterns: heads are grouped by pattern kind, and each group runs
/// its estimation, index building and kernel as single launches over all of its heads.
extension AttentionEngine {
    /// Runs `plan` (one pattern per query head) over device tensors into `output`; waits for it.
    /// With a `workspace`, the call's own buffers (head lists, estimation, selections, index lists)
    /// come from it, so repeated calls allocate nothing after the first at the largest size.
    public func run(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                    plan: LayerPlan, options: SparseOptions = SparseOptions(), workspace: Workspace? = nil) throws -> LayerResult {
        try withScratch(workspace) {
            try run(problem: problem, q: q, k: k, v: v, output: output, plan: plan, options: options, scratch: $0)
        }
    }

    func run(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
             plan: LayerPlan, options: SparseOptions, scratch: Scratch) throws -> LayerResult {
        try Self.checkBuffers(problem: problem, q: q, k: k, v: v, output: output)
        try plan.validate(for: problem)
        try checkDeviceMemory(problem: problem, plan: plan, options: options)
        let profile = DeviceProfile.profile(for: context.device.info)
        let config = self.config(for: problem)
        let n = problem.queryLength

        // What each query head runs: its pattern, or dense below the device's threshold.
        let executed: [HeadPattern] = plan.heads.map { pattern in
            if options.denseFallback == .automatic, pattern.kind != .dense, n < profile.denseThreshold(pattern.kind) {
                return .dense
            }
            return pattern
        }
        var result = LayerResult(problem: problem, plan: plan, executed: executed, profile: profile.source)
        let slotsOf: (HeadPattern.Kind) -> [(slot: Int32, head: Int)] = { kind in
            (0..<problem.batch).flatMap { b in
                executed.indices.filter { executed[$0].kind == kind }.map { (Int32(b * problem.headsQ + $0), $0) }
            }
        }

        let dense = slotsOf(.dense)
        if !dense.isEmpty {
            let slotBuffer = try scratch.copying(dense.map(\.slot), "dense slots")
            let event = try DenseAttentionKernel(problem: problem, config: config).enqueue(
                context: context, q: q.buffer, k: k.buffer, v: v.buffer, o: output.buffer, slots: slotBuffer, slotCount: dense.count)
            var timing = PhaseTiming()
            try timing.add(.kernel, event)
            result.timing[.dense] = timing
            for (_, head) in dense { result.addPairs(head: head, Int(problem.densePairs)) }
        }

        let aShape = slotsOf(.aShape)
        if !aShape.isEmpty {
            let budgets = aShape.map { entry -> (sink: Int, window: Int) in
                guard case .aShape(let sink, let window) = executed[entry.head] else { fatalError("grouped by kind") }
                return (sink, window)
            }
            let slotBuffer = try scratch.copying(aShape.map(\.slot), "a-shape slots")
            var timing = PhaseTiming()
            try AShapeKernel(context: context, problem: problem, config: config, slots: aShape.map(\.slot), budgets: budgets,
                             workspace: scratch.workspace)
                .run(q: q.buffer, k: k.buffer, v: v.buffer, output: output.buffer, slotBuffer: slotBuffer, timing: &timing)
            result.timing[.aShape] = timing
            for (entry, budget) in zip(aShape, budgets) {
                result.addPairs(head: entry.head, AShapeKernel.coveredPairs(length: n, sink: min(budget.sink, n), window: min(budget.window, n)))
            }
        }

        let verticalSlash = slotsOf(.verticalSlash)
        if !verticalSlash.isEmpty {
            let budgets = verticalSlash.map { entry -> (vertical: Int, slash: Int) in
                guard case .verticalSlash(let vertical, let slash) = executed[entry.head] else { fatalError("grouped by kind") }
                return VerticalSlashPipeline.clamp(vertical: vertical, slash: slash, length: n)
            }
            let slotBuffer = try scratch.copying(verticalSlash.map(\.slot), "vertical-slash slots")
            let pipeline = VerticalSlashPipeline(context: context, problem: problem, config: config, slots: verticalSlash.map(\.slot),
                                                 budgets: budgets, estimation: options.estimation ?? profile.estimation,
                                                 workspace: scratch.workspace)
            var timing = PhaseTiming()
            let indices = try pipeline.run(q: q.buffer, k: k.buffer, v: v.buffer, output: output.buffer, slotBuffer: slotBuffer,
                                           timing: &timing)
            result.timing[.verticalSlash] = timing
            let pairs = try indices.coveredPairs.read(as: Int64.self, count: verticalSlash.count * pipeline.rowBlocks)
            for (s, entry) in verticalSlash.enumerated() {
                let rows = pipeline.rowBlocks
                result.addPairs(head: entry.head, Int(pairs[(s * rows)..<((s + 1) * rows)].reduce(0, +)))
            }
            if options.collectIndices {
                result.indices.verticalSlash = try VerticalSlashHeadIndices.download(indices, pipeline: pipeline, heads: verticalSlash.map(\.slot))
            }
        }

        let blockSparse = slotsOf(.blockSparse)
        if !blockSparse.isEmpty {
            let blocks = blockSparse.map { entry -> Int in
                guard case .blockSparse(let blocks) = executed[entry.head] else { fatalError("grouped by kind") }
                return blocks
            }
            let slotBuffer = try scratch.copying(blockSparse.map(\.slot), "block-sparse slots")
            let pipeline = BlockSparsePipeline(context: context, problem: problem, config: config, slots: blockSparse.map(\.slot),
                                               blocks: blocks, scoring: options.estimation ?? profile.blockScores,
                                               workspace: scratch.workspace)
            var timing = PhaseTiming()
            let selection = try pipeline.run(q: q.buffer, k: k.buffer, v: v.buffer, output: output.buffer, slotBuffer: slotBuffer,
                                             timing: &timing)
            result.timing[.blockSparse] = timing
            let heads = try BlockSparseHeadIndices.download(selection, pipeline: pipeline, heads: blockSparse.map(\.slot))
            for (entry, index) in zip(blockSparse, heads) { result.addPairs(head: entry.head, index.coveredPairs(length: n)) }
            if options.collectIndices { result.indices.blockSparse = heads }
        }
        return result
    }

    /// Runs `plan` on host tensors; returns the output and the layer's report. `checkFinite` as
    /// in `dense(q:k:v:)`: on by default.
    public func run(q: Tensor, k: Tensor, v: Tensor, plan: LayerPlan, scale: Float? = nil, outputDType: DType? = nil,
                    options: SparseOptions = SparseOptions(), checkFinite: Bool = true) throws -> (output: Tensor, report: LayerResult) {
        let problem = try Self.problem(q: q, k: k, v: v, causal: true, scale: scale, outputDType: outputDType)
        try plan.validate(for: problem)
        if checkFinite { try Self.checkFinite(q: q, k: k, v: v) }
        try checkDeviceMemory(problem: problem, plan: plan, options: options)
        let dq = try DeviceTensor(context: context, copying: q, label: "q")
        let dk = try DeviceTensor(context: context, copying: k, label: "k")
        let dv = try DeviceTensor(context: context, copying: v, label: "v")
        let out = try DeviceTensor(context: context, shape: q.shape, dtype: problem.outputDType, label: "output")
        let report = try run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan, options: options)
        return (try out.download(), report)
    }
}

/// What a layer run did: per pattern kind the device time of each phase, per query head the
/// pattern that ran and the share of the causal attention its kernel covered.
public struct LayerResult: Sendable {
    public let problem: AttentionProblem
    public let plan: LayerPlan
    /// The pattern each query head ran (dense where the device profile's fallback applied).
    public let executed: [HeadPattern]
    /// The device profile row that decided fallbacks.
    public let profile: String
    public internal(set) var timing: [HeadPattern.Kind: PhaseTiming] = [:]
    /// Causal (query, key) pairs covered per query head, summed over the batch.
    public internal(set) var coveredPairs: [Int]
    public internal(set) var indices = LayerIndices()

    init(problem: AttentionProblem, plan: LayerPlan, executed: [HeadPattern], profile: String) {
        self.problem = problem
        self.plan = plan
        self.executed = executed
        self.profile = profile
        self.coveredPairs = Array(repeating: 0, count: problem.headsQ)
    }

    mutating func addPairs(head: Int, _ pairs: Int) { coveredPairs[head] += pairs }

    /// Fraction of the N(N+1)/2 causal pairs (per batch entry) that head's kernel covered.
    public func density(head: Int) -> Double {
        coveredPairs[head] == 0 ? 0 : Double(coveredPairs[head]) / (problem.densePairs * Double(problem.batch))
    }

    /// Mean density of the heads that ran `kind`.
    public func density(of kind: HeadPattern.Kind) -> Double? {
        let heads = executed.indices.filter { executed[$0].kind == kind }
        guard !heads.isEmpty else { return nil }
        return heads.map { density(head: $0) }.reduce(0, +) / Double(heads.count)
    }

    /// All phases of all pattern kinds.
    public var totalTiming: PhaseTiming {
        var total = PhaseTiming()
        for t in timing.values { total.add(t) }
        return total
    }
}
