import COpenCL

/// A whole layer with per-head patterns: heads are grouped by pattern kind, and each group runs
/// its estimation, index building and kernel as single launches over all of its heads.
extension AttentionEngine {
    /// Enqueues `plan` (one pattern per query head) over device tensors into `output` on the
    /// context's queue and returns without waiting: the estimation, top-k, index conversion and
    /// kernels of every pattern group, behind whatever the queue already holds and behind
    /// `events`. Returns the event of the last command (the queue is flushed, so the work starts).
    ///
    /// No host synchronisation happens inside: every size is decided on the host from the problem
    /// and the plan, and small host data (head lists, budgets) is written without waiting. The
    /// layer's report (covered pairs, per-phase times, indices) is `run`'s; `enqueue` gives none.
    ///
    /// - Parameters:
    ///   - problem: shapes, dtypes, causal mask and scale. `Nq < Nk` is a chunk of a prefill:
    ///     query i at position `Nk - Nq + i` (see `LayerPlan` for what each pattern computes there).
    ///   - q: queries, logical shape `[B, Hq, Nq, d]` (or `[Hq, Nq, d]`) in the problem's input
    ///     dtype. This and the other tensors may have any layout `DeviceTensor` allows (strides and
    ///     offset multiples of 8 elements), in a buffer of this engine's OpenCL context.
    ///   - k: keys, `[B, Hkv, Nk, d]` (or `[Hkv, Nk, d]`), e.g. the first Nk tokens of a KV cache.
    ///   - v: values, shaped like k.
    ///   - output: shaped like q, in the problem's output dtype; must not overlap itself or an input.
    ///     Written when the returned event completes.
    ///   - plan: one pattern per query head.
    ///   - options: dense fallback (default: below the device profile's measured length), estimation
    ///     backend; `collectIndices` is ignored here (use `run`).
    ///   - workspace: buffers reused across calls (nil: fresh buffers, released when the queue is
    ///     done with them).
    ///   - events: commands the layer must wait for (e.g. the caller's writes of q, k, v), in this
    ///     context; none: only the commands already on the (in-order) queue.
    /// - Returns: the event of the layer's last command; wait on it, or pass its `clEvent` to the
    ///   caller's next commands.
    /// - Throws: `AttentionError` for tensors that do not fit the problem or the engine, a plan that
    ///   does not fit the problem; `DeviceMemoryError` before anything is allocated when memory is
    ///   short; `OpenCLError`, `ProgramBuildError` when an OpenCL call or a kernel build fails.
    @discardableResult
    public func enqueue(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                        plan: LayerPlan, options: SparseOptions = SparseOptions(), workspace: Workspace? = nil,
                        waitingFor events: [CommandEvent] = []) throws -> CommandEvent {
        let encoded = try withScratch(workspace) {
            try encode(problem: problem, q: q, k: k, v: v, output: output, plan: plan, options: options, waitingFor: events, scratch: $0)
        }
        try check(clFlush(context.queue), "clFlush", device: context.device.info.name)
        return encoded.last
    }

    /// Runs `plan` (one pattern per query head) over device tensors into `output`, as `enqueue`
    /// does, then waits for it and returns the layer's report: per pattern kind the device time of
    /// each phase, per head the pattern that ran and the pairs it covered, and (with
    /// `options.collectIndices`) the index lists. With a `workspace`, the call's own buffers come
    /// from it, so repeated calls allocate nothing after the first at the largest size.
    /// Throws as `enqueue` does.
    public func run(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                    plan: LayerPlan, options: SparseOptions = SparseOptions(), workspace: Workspace? = nil) throws -> LayerResult {
        try withScratch(workspace) {
            let encoded = try encode(problem: problem, q: q, k: k, v: v, output: output, plan: plan, options: options,
                                     waitingFor: [], scratch: $0)
            return try encoded.report(collectIndices: options.collectIndices)
        }
    }

    /// The patterns each query head runs: its own, dense for a decode step (Nq = 1 < Nk), and dense below
    /// the device's measured key length with the automatic fallback.
    func executedPatterns(problem: AttentionProblem, plan: LayerPlan, options: SparseOptions,
                          profile: DeviceProfile) -> [HeadPattern] {
        plan.heads.map { pattern in
            guard pattern.kind != .dense else { return pattern }
            if problem.queryLength == 1 && problem.keyLength > 1 { return .dense }
            if options.denseFallback == .automatic, problem.keyLength < profile.denseThreshold(pattern.kind) { return .dense }
            if case .flexPrefill(let parameters) = pattern,
               FlexPrefillPipeline.runsDense(keyLength: problem.keyLength, parameters: parameters) { return .dense }
            return pattern
        }
    }

    /// Enqueues every pattern group of the layer (after the non-finite scan, unless
    /// `options.assumeFinite`); waits for nothing.
    func encode(problem: AttentionProblem, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                plan: LayerPlan, options: SparseOptions, waitingFor events: [CommandEvent], scratch: Scratch) throws -> EncodedLayer {
        try plan.validate(for: problem)
        try checkTensors(problem: problem, q: q, k: k, v: v, output: output)
        try checkDeviceMemory(problem: problem, plan: plan, options: options)
        let profile = DeviceProfile.profile(for: context.device.info)
        let config = self.config(for: problem)
        let executed = executedPatterns(problem: problem, plan: plan, options: options, profile: profile)
        var encoded = EncodedLayer(problem: problem, plan: plan, executed: executed, profile: profile.source)
        if !events.isEmpty {
            // Behind a marker on the caller's events, every later command of the in-order queue waits.
            encoded.last = try context.marker(waitingFor: events, label: "wait for the caller's events")
        }
        let (tensors, scan) = try layerTensors(problem: problem, q: q, k: k, v: v, output: output, scratch: scratch,
                                               inputsChecked: options.assumeFinite)
        encoded.scan = scan
        let slotsOf: (HeadPattern.Kind) -> [(slot: Int32, head: Int)] = { kind in
            (0..<problem.batch).flatMap { b in
                executed.indices.filter { executed[$0].kind == kind }.map { (Int32(b * problem.headsQ + $0), $0) }
            }
        }

        let dense = slotsOf(.dense)
        if !dense.isEmpty {
            let slotBuffer = try scratch.copying(dense.map(\.slot), "dense slots")
            var events = PhaseEvents()
            events.add(.kernel, try DenseAttentionKernel(problem: problem, config: config).enqueue(
                context: context, tensors: tensors, slots: slotBuffer, slotCount: dense.count))
            encoded.add(.dense, events)
        }

        let aShape = slotsOf(.aShape)
        if !aShape.isEmpty {
            let budgets = aShape.map { entry -> (sink: Int, window: Int) in
                guard case .aShape(let sink, let window) = executed[entry.head] else { fatalError("grouped by kind") }
                return (sink, window)
            }
            let slotBuffer = try scratch.copying(aShape.map(\.slot), "a-shape slots")
            var events = PhaseEvents()
            try AShapeKernel(context: context, problem: problem, config: config, slots: aShape.map(\.slot), budgets: budgets,
                             workspace: scratch.workspace)
                .run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.aShape, events)
            encoded.aShape = zip(aShape, budgets).map { ($0.head, $1.sink, $1.window) }
        }

        let verticalSlash = slotsOf(.verticalSlash)
        if !verticalSlash.isEmpty {
            let budgets = verticalSlash.map { entry -> (vertical: Int, slash: Int) in
                guard case .verticalSlash(let vertical, let slash) = executed[entry.head] else { fatalError("grouped by kind") }
                return VerticalSlashPipeline.clamp(vertical: vertical, slash: slash, length: problem.keyLength)
            }
            let slotBuffer = try scratch.copying(verticalSlash.map(\.slot), "vertical-slash slots")
            let pipeline = VerticalSlashPipeline(context: context, problem: problem, config: config, slots: verticalSlash.map(\.slot),
                                                 budgets: budgets, estimation: options.estimation ?? profile.estimation,
                                                 workspace: scratch.workspace)
            var events = PhaseEvents()
            let indices = try pipeline.run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.verticalSlash, events)
            encoded.verticalSlash = (pipeline, indices, verticalSlash.map(\.head))
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
            var events = PhaseEvents()
            let selection = try pipeline.run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.blockSparse, events)
            encoded.blockSparse = (pipeline, selection, blockSparse.map(\.head))
        }

        let triShape = slotsOf(.triShape)
        if !triShape.isEmpty {
            let budgets = triShape.map { entry -> (sink: Int, window: Int, last: Int) in
                guard case .triShape(let sink, let window, let last) = executed[entry.head] else { fatalError("grouped by kind") }
                return (sink, window, last)
            }
            let slotBuffer = try scratch.copying(triShape.map(\.slot), "tri-shape slots")
            let kernel = TriShapeKernel(context: context, problem: problem, config: config, slots: triShape.map(\.slot),
                                        budgets: budgets.map { ($0.sink, $0.window) }, last: budgets[0].last, workspace: scratch.workspace)
            var events = PhaseEvents()
            try kernel.run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.triShape, events)
            encoded.triShape = (kernel, zip(triShape, budgets).map { ($0.head, $1.sink, $1.window) })
        }

        let xAttention = slotsOf(.xAttention)
        if !xAttention.isEmpty {
            guard case .xAttention(let parameters) = executed[xAttention[0].head] else { fatalError("grouped by kind") }
            let slotBuffer = try scratch.copying(xAttention.map(\.slot), "xattention slots")
            let pipeline = XAttentionPipeline(context: context, problem: problem, config: config, slots: xAttention.map(\.slot),
                                              parameters: parameters,
                                              tensorCores: context.tensorCorePath != .portable && problem.inputDType != .f32,
                                              workspace: scratch.workspace)
            var events = PhaseEvents()
            let (lists, pairs) = try pipeline.run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.xAttention, events)
            encoded.blockLists.append(.init(geometry: pipeline.blocks, lists: lists, pairs: pairs, heads: xAttention.map(\.head),
                                            flexPrefill: nil))
        }

        let flexPrefill = slotsOf(.flexPrefill)
        if !flexPrefill.isEmpty {
            guard case .flexPrefill(let parameters) = executed[flexPrefill[0].head] else { fatalError("grouped by kind") }
            let slotBuffer = try scratch.copying(flexPrefill.map(\.slot), "flexprefill slots")
            let pipeline = FlexPrefillPipeline(context: context, problem: problem, config: config, slots: flexPrefill.map(\.slot),
                                               parameters: parameters, estimation: options.estimation ?? profile.estimation,
                                               workspace: scratch.workspace)
            var events = PhaseEvents()
            let (lists, choice, pairs) = try pipeline.run(tensors: tensors, slotBuffer: slotBuffer, events: &events)
            encoded.add(.flexPrefill, events)
            encoded.blockLists.append(.init(geometry: pipeline.blocks, lists: lists, pairs: pairs, heads: flexPrefill.map(\.head),
                                            flexPrefill: (pipeline, choice)))
        }
        return encoded
    }

    /// Runs `plan` on host tensors; returns the output and the layer's report. `checkFinite` as
    /// in `dense(q:k:v:)`: on by default. q is `[B, Hq, Nq, d]`, k and v `[B, Hkv, Nk, d]`
    /// (`Nq < Nk`: a chunk, queries at the end).
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
        var options = options
        if checkFinite { options.assumeFinite = true }
        let report = try run(problem: problem, q: dq, k: dk, v: dv, output: out, plan: plan, options: options)
        return (try out.download(), report)
    }
}

/// A layer's enqueued commands and the device buffers its report reads once they are done.
struct EncodedLayer {
    let problem: AttentionProblem
    let plan: LayerPlan
    let executed: [HeadPattern]
    let profile: String
    var events: [HeadPattern.Kind: PhaseEvents] = [:]
    var last: CommandEvent!
    /// The non-finite scan (`NonFiniteFlags`), timed with the first pattern group added after it.
    var scan: [CommandEvent] = [] {
        didSet { if let event = scan.last { last = event } }
    }
    var aShape: [(head: Int, sink: Int, window: Int)] = []
    var verticalSlash: (pipeline: VerticalSlashPipeline, indices: VerticalSlashPipeline.Indices, heads: [Int])?
    var blockSparse: (pipeline: BlockSparsePipeline, selection: TopKKernel.Selection, heads: [Int])?
    var triShape: (kernel: TriShapeKernel, heads: [(head: Int, sink: Int, window: Int)])?
    var blockLists: [BlockListGroup] = []

    /// A group of heads that ran B-block lists: FlexPrefill's when `flexPrefill` is set, else
    /// XAttention's.
    struct BlockListGroup {
        var geometry: BlockListAttention
        var lists: BlockLists
        /// [slots * query blocks] Int64.
        var pairs: DeviceBuffer
        var heads: [Int]
        var flexPrefill: (pipeline: FlexPrefillPipeline, choice: FlexPrefillPipeline.Choice)?
    }

    init(problem: AttentionProblem, plan: LayerPlan, executed: [HeadPattern], profile: String) {
        self.problem = problem
        self.plan = plan
        self.executed = executed
        self.profile = profile
    }

    mutating func add(_ kind: HeadPattern.Kind, _ phases: PhaseEvents) {
        var phases = phases
        if events.isEmpty { phases.prepend(.nonFiniteScan, scan) }
        events[kind] = phases
        if let event = phases.last { last = event }
    }

    /// Waits for the layer and reads its report (covered pairs, times, and the index lists when
    /// asked for).
    func report(collectIndices: Bool) throws -> LayerResult {
        var result = LayerResult(problem: problem, plan: plan, executed: executed, profile: profile)
        for (kind, phases) in events { result.timing[kind] = try PhaseTiming(waitingFor: phases) }
        let shift = problem.keyLength - problem.queryLength
        let positions = shift..<problem.keyLength
        for head in executed.indices where executed[head].kind == .dense {
            result.addPairs(head: head, Int(problem.densePairs) * problem.batch)
        }
        for entry in aShape {
            let n = problem.keyLength
            result.addPairs(head: entry.head, AShapeKernel.coveredPairs(positions: positions, sink: min(entry.sink, n),
                                                                        window: min(entry.window, n)))
        }
        if let (pipeline, indices, heads) = verticalSlash {
            let rows = pipeline.rowBlocks
            let pairs = try indices.coveredPairs.read(as: Int64.self, count: heads.count * rows)
            for (s, head) in heads.enumerated() {
                result.addPairs(head: head, Int(pairs[(s * rows)..<((s + 1) * rows)].reduce(0, +)))
            }
            if collectIndices {
                result.indices.verticalSlash = try VerticalSlashHeadIndices.download(indices, pipeline: pipeline, heads: pipeline.slots)
            }
        }
        if let (pipeline, selection, heads) = blockSparse {
            let lists = try BlockSparseHeadIndices.download(selection, pipeline: pipeline, heads: pipeline.slots)
            for (head, index) in zip(heads, lists) {
                result.addPairs(head: head, index.coveredPairs(length: problem.keyLength, first: shift))
            }
            if collectIndices { result.indices.blockSparse = lists }
        }
        if let (kernel, heads) = triShape {
            for entry in heads { result.addPairs(head: entry.head, kernel.coveredPairs(sink: entry.sink, window: entry.window)) }
        }
        for group in blockLists {
            let rows = group.geometry.queryBlocks
            let pairs = try group.pairs.read(as: Int64.self, count: group.heads.count * rows)
            for (s, head) in group.heads.enumerated() {
                result.addPairs(head: head, Int(pairs[(s * rows)..<((s + 1) * rows)].reduce(0, +)))
            }
            guard collectIndices else { continue }
            if let (pipeline, choice) = group.flexPrefill {
                result.indices.flexPrefill = try pipeline.download(group.lists, choice, heads: pipeline.slots)
            } else {
                result.indices.xAttention = try group.geometry.download(group.lists, heads: group.geometry.slots)
            }
        }
        return result
    }
}

/// What a layer run did: per pattern kind the device time of each phase, per query head the
/// pattern that ran and the share of the causal attention its kernel covered.
public struct LayerResult: Sendable {
    /// The problem the layer ran: shapes, dtypes, mask and scale.
    public let problem: AttentionProblem
    /// The plan as requested: one pattern per query head (``executed`` says what ran).
    public let plan: LayerPlan
    /// The pattern each query head ran (dense where the device profile's fallback applied, and
    /// for a decode step, Nq = 1).
    public let executed: [HeadPattern]
    /// The device profile row that decided fallbacks.
    public let profile: String
    /// Device time per pattern kind that ran, split into phases (estimation, index building,
    /// attention kernel); kinds no head ran are absent. Unavailable (``PhaseTiming/isAvailable``
    /// false, times 0) on a queue without profiling.
    public internal(set) var timing: [HeadPattern.Kind: PhaseTiming] = [:]
    /// Causal (query, key) pairs covered per query head, summed over the batch.
    public internal(set) var coveredPairs: [Int]
    /// The index lists the sparse heads used, when the run asked for them
    /// (``SparseOptions/collectIndices``); empty otherwise.
    public internal(set) var indices = LayerIndices()

    init(problem: AttentionProblem, plan: LayerPlan, executed: [HeadPattern], profile: String) {
        self.problem = problem
        self.plan = plan
        self.executed = executed
        self.profile = profile
        self.coveredPairs = Array(repeating: 0, count: problem.headsQ)
    }

    mutating func addPairs(head: Int, _ pairs: Int) { coveredPairs[head] += pairs }

    /// Fraction of the causal pairs of the problem (`AttentionProblem.densePairs` per batch entry:
    /// N(N+1)/2 in prefill, the chunk's trapezoid for Nq < Nk) that head's kernel covered.
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
