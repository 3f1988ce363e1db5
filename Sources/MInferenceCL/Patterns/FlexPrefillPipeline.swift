/// FlexPrefill heads of a layer, all in one launch per step (docs/PREFILL-METHODS.md section 5,
/// CLKernels/flexprefill_index.cl): the last B queries' attention estimate, per head the budgets
/// and the Jensen-Shannon choice, top-k of the pooled verticals and slashes, for query-aware heads
/// the pooled block attention and its threshold, then per query block the union as B-block lists
/// on the block-sparse kernel.
struct FlexPrefillPipeline {
    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    let parameters: FlexPrefillParameters
    let estimation: DeviceProfile.EstimationBackend
    var workspace: Workspace? = nil
    var scratch: Scratch { Scratch(context: context, workspace: workspace) }

    var blocks: BlockListAttention {
        BlockListAttention(context: context, problem: problem, config: config, slots: slots, blockSize: parameters.blockSize)
    }
    /// Queries the estimate reads: the last B (of the chunk).
    var lastRows: Int { min(parameters.blockSize, problem.queryLength) }

    /// Upstream runs the whole layer densely up to max(2B, the minimum budget in whole blocks)
    /// keys (docs/PREFILL-METHODS.md 5.2).
    static func runsDense(keyLength: Int, parameters: FlexPrefillParameters) -> Bool {
        keyLength <= max(2 * parameters.blockSize, parameters.minBlocks * parameters.blockSize)
    }

    /// The per-slot choice buffers: verticals and slashes per slot, query-aware flags, distances.
    struct Choice {
        var selection: TopKKernel.Selection
        var queryAware: DeviceBuffer
        var distance: DeviceBuffer
    }

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws -> (BlockLists, Choice, pairs: DeviceBuffer) {
        let (lists, choice) = try select(tensors: tensors, slotBuffer: slotBuffer, events: &events)
        let pairs = try blocks.run(tensors: tensors, slotBuffer: slotBuffer, lists: lists, scratch: scratch, role: "flexprefill",
                                   events: &events)
        return (lists, choice, pairs)
    }

    func select(tensors: LayerTensors, slotBuffer: DeviceBuffer, events phases: inout PhaseEvents) throws -> (BlockLists, Choice) {
        let s = slots.count, d = problem.headDim, b = parameters.blockSize
        let geometry = blocks
        let qb = geometry.queryBlocks, nb = geometry.keyBlocks, base = geometry.blockBase
        let estimate = try LastQueryEstimate(context: context, problem: problem, slots: slots, lastQueries: b, forcedColumns: 0,
                                             forcedDiagonals: 0, backend: estimation, scratch: scratch)
            .scores(q: tensors.q, k: tensors.k, slotBuffer: slotBuffer, events: &phases)
        let program = try context.program(KernelSource.named("flexprefill_index.cl"), options: BuildOptions(defines: [
            "INPUT_DTYPE": problem.inputDType.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "\(d)", "FLEX_BLOCK": "\(b)"]))
        var events: [CommandEvent] = []
        let kvHeads = problem.batch * problem.headsKV
        let kvSlots = try scratch.copying((0..<kvHeads).map { Int32($0) }, "flexprefill kv heads")
        let kvOfSlot = try scratch.copying(slots.map { Int32(problem.kvHead(ofFlattened: Int($0))) }, "flexprefill kv of slot")
        let pooledK = try scratch.buffer("flexprefill pooled keys", byteCount: kvHeads * nb * d * 4)
        let pooledQ = try scratch.buffer("flexprefill pooled queries", byteCount: max(1, s * qb * d) * 4)
        let lastMean = try scratch.buffer("flexprefill last-query mean", byteCount: s * d * 4)
        func mean(_ x: DeviceTensor, heads: DeviceBuffer, headCount: Int, perBatch: Int, first: Int, rows: Int, length: Int,
                  scale: Float, into out: DeviceBuffer, blocks: Int) throws -> CommandEvent {
            try context.launch(program, "flex_block_mean", global: [d, blocks, headCount], local: nil,
                               [.buffer(x.buffer), .layout(x.layout), .buffer(heads), .int(perBatch), .int(first), .int(rows),
                                .int(length), .float(scale), .buffer(out), .int(blocks)])
        }
        events.append(try mean(tensors.k, heads: kvSlots, headCount: kvHeads, perBatch: problem.headsKV, first: 0, rows: b,
                               length: problem.keyLength, scale: 1, into: pooledK, blocks: nb))
        events.append(try mean(tensors.q, heads: slotBuffer, headCount: s, perBatch: problem.headsQ, first: 0, rows: b,
                               length: problem.queryLength, scale: problem.scale, into: pooledQ, blocks: qb))
        events.append(try mean(tensors.q, heads: slotBuffer, headCount: s, perBatch: problem.headsQ,
                               first: problem.queryLength - lastRows, rows: lastRows, length: problem.queryLength,
                               scale: problem.scale, into: lastMean, blocks: 1))
        phases.add(.estimation, events)

        let blockScores = try scratch.buffer("flexprefill block scores", byteCount: 2 * s * nb * 4)
        let logits = try scratch.buffer("flexprefill pooled logits", byteCount: s * nb * 4)
        let ks = try scratch.buffer("flexprefill budgets", byteCount: 2 * s * 4)
        let queryAware = try scratch.buffer("flexprefill query-aware", byteCount: s * 4)
        let distance = try scratch.buffer("flexprefill distance", byteCount: s * 4)
        let gamma = KernelArgument.exactDouble(parameters.gamma)
        var indexEvents: [CommandEvent] = []
        indexEvents.append(try context.launch(
            program, "flex_head_choice", global: [256 * s], local: [256],
            [.buffer(estimate), .int(problem.keyLength), .int(lastRows), .buffer(lastMean), .buffer(pooledK), .buffer(kvOfSlot),
             .int(nb), .buffer(blockScores), .buffer(logits)] + gamma + KernelArgument.exactDouble(parameters.tau) + [
             .int(parameters.minBlocks), .int(min(parameters.maxBlocks, Int(Int32.max))), .buffer(ks), .buffer(queryAware),
             .buffer(distance)]))
        let (selection, selectEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: blockScores, stride: nb, count: 2 * s, length: nb, causal: false, rowsPerGroup: 1, kOfGroup: [],
            kBuffer: ks, maxK: nb), scratch: scratch, role: "flexprefill vertical-slash top-k")
        indexEvents.append(selectEvent)

        let pooled = try scratch.buffer("flexprefill pooled attention", byteCount: max(1, s * qb * nb) * 4)
        indexEvents.append(try context.launch(
            program, "flex_pooled_scores", global: [256 * qb, s], local: [256, 1],
            [.buffer(pooledQ), .buffer(pooledK), .buffer(kvOfSlot), .int(qb), .int(base), .int(nb), .buffer(pooled)]))
        let awareCounts = try scratch.buffer("flexprefill query-aware counts", byteCount: s * 4)
        indexEvents.append(try context.launch(
            program, "flex_pooled_counts", global: [256 * s], local: [256],
            [.buffer(pooled), .int(qb), .int(nb), .buffer(queryAware)] + gamma + [.buffer(awareCounts)]))
        let (aware, awareEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: pooled, stride: qb * nb, count: s, length: qb * nb, causal: false, rowsPerGroup: 1, kOfGroup: [],
            kBuffer: awareCounts, maxK: qb * nb), scratch: scratch, role: "flexprefill query-aware top-k")
        indexEvents.append(awareEvent)

        let flags = try scratch.buffer("flexprefill row flags", byteCount: max(1, s * qb * nb))
        let lists = try scratch.buffer("flexprefill lists", byteCount: max(1, s * qb * nb) * 4)
        let counts = try scratch.buffer("flexprefill list counts", byteCount: max(1, s * qb) * 4)
        indexEvents.append(try context.launch(
            program, "flex_row_lists", global: [256 * qb, s], local: [256, 1],
            [.buffer(selection.indices), .buffer(selection.counts), .int(selection.stride), .buffer(aware.indices), .buffer(aware.counts),
             .int(aware.stride), .int(qb), .int(base), .int(nb), .buffer(flags), .buffer(lists), .buffer(counts)]))
        phases.add(.indices, indexEvents)
        return (BlockLists(lists: lists, counts: counts, stride: nb),
                Choice(selection: selection, queryAware: queryAware, distance: distance))
    }

    /// Each slot's choice and lists on the host (after the queue finished them).
    func download(_ lists: BlockLists, _ choice: Choice, heads: [Int32]) throws -> [FlexPrefillHeadIndices] {
        let s = heads.count
        let lists = try blocks.download(lists, heads: heads)
        let aware = try choice.queryAware.read(as: Int32.self, count: s)
        let distance = try choice.distance.read(as: Float.self, count: s)
        let stride = choice.selection.stride
        let selected = try choice.selection.indices.read(as: Int32.self, count: 2 * s * stride)
        let counts = try choice.selection.counts.read(as: Int32.self, count: 2 * s)
        return (0..<s).map { slot in
            FlexPrefillHeadIndices(
                queryAware: aware[slot] != 0, distance: distance[slot],
                verticalBlocks: Array(selected[(slot * stride)..<(slot * stride + Int(counts[slot]))]),
                slashBlocks: Array(selected[((s + slot) * stride)..<((s + slot) * stride + Int(counts[s + slot]))]),
                blocks: lists[slot])
        }
    }
}
