/// Block-sparse heads of a layer in one launch per step (docs/MINFERENCE.md section 7):
/// mean-pool q and k per 64 tokens, score block pairs, keep the best `blocks` key blocks per
/// query block, run the block-sparse kernel.
struct BlockSparsePipeline {
    static let block = 64

    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    /// Requested blocks per slot (clamped to the block count as upstream does).
    let blocks: [Int]
    let scoring: DeviceProfile.EstimationBackend
    /// Buffers from this workspace (nil: fresh ones per call).
    var workspace: Workspace? = nil
    var scratch: Scratch { Scratch(context: context, workspace: workspace) }

    /// Key length; the blocks are 64 key positions from position 0.
    var n: Int { problem.keyLength }
    /// Upstream pads N by 64 - N % 64 (a whole block when N is a multiple of 64).
    var paddedBlocks: Int { n / Self.block + 1 }
    /// Position of query row 0 (0 in prefill; Nk - Nq for a chunk).
    var shift: Int { problem.keyLength - problem.queryLength }
    /// The first block holding a query row: pooled query blocks, score and selection rows start
    /// there (0 in prefill).
    var firstQueryBlock: Int { shift / Self.block }
    /// Pooled query blocks per slot (selection rows per slot, padding block included).
    var queryBlocks: Int { paddedBlocks - firstQueryBlock }
    /// Row blocks holding query rows: the kernel's work-groups per slot.
    var rowBlocks: Int { (n + Self.block - 1) / Self.block - firstQueryBlock }

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws -> TopKKernel.Selection {
        let selection = try select(q: tensors.q, k: tensors.k, slotBuffer: slotBuffer, events: &events)
        events.add(.kernel, try tensors.launch(
            "block_sparse_attention", file: "sparse_attention.cl", options: config.sparse.buildOptions(problem: problem), context: context,
            global: [rowBlocks * config.sparse.threads, slots.count], local: [config.sparse.threads, 1],
            [.buffer(slotBuffer), .buffer(selection.indices),
             .buffer(selection.counts), .int(selection.stride), .int(queryBlocks), .int(problem.queryLength), .int(n),
             .int(firstQueryBlock), .int(problem.headsQ), .int(problem.headsKV), .float(problem.scale * Float.log2e)]))
        return selection
    }

    /// The estimate and top-k without the attention kernel: the key blocks of every slot's
    /// query blocks ([slots * queryBlocks, stride], the layout block_sparse_attention reads).
    func select(q: DeviceTensor, k: DeviceTensor, slotBuffer: DeviceBuffer, events phases: inout PhaseEvents) throws -> TopKKernel.Selection {
        let nb = paddedBlocks, qb = queryBlocks, s = slots.count, d = problem.headDim
        let program = try context.program(
            KernelSource.named("block_sparse_index.cl"),
            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "\(d)"]))
        let kvHeads = problem.batch * problem.headsKV
        let pooledQ = try scratch.buffer("pooled q", byteCount: s * qb * d * 4)
        let pooledK = try scratch.buffer("pooled k", byteCount: kvHeads * nb * d * 4)
        let kvSlots = try scratch.copying((0..<kvHeads).map { Int32($0) }, "kv slots")
        var events: [CommandEvent] = []
        events.append(try context.launch(program, "block_mean_pool", global: [d, qb, s], local: nil,
                                         [.buffer(q.buffer), .layout(q.layout), .buffer(slotBuffer), .buffer(pooledQ),
                                          .int(problem.queryLength), .int(shift), .int(firstQueryBlock), .int(qb), .int(problem.headsQ)]))
        events.append(try context.launch(program, "block_mean_pool", global: [d, nb, kvHeads], local: nil,
                                         [.buffer(k.buffer), .layout(k.layout), .buffer(kvSlots), .buffer(pooledK),
                                          .int(n), .int(0), .int(0), .int(nb), .int(problem.headsKV)]))
        let scores = try scratch.buffer("block scores", byteCount: s * qb * nb * 4)
        if scoring == .clblast {
            let kvOf = slots.map { problem.kvHead(ofFlattened: Int($0)) }
            events.append(try CLBlastGEMM.multiplyTransposed(
                context: context, m: qb, n: nb, k: d, a: pooledQ, aOffsets: (0..<s).map { $0 * qb * d },
                b: pooledK, bOffsets: kvOf.map { $0 * nb * d }, c: scores, cOffsets: (0..<s).map { $0 * qb * nb }))
        } else {
            // 64 x 64 scores per work-group of 16 x 16 (block_sparse_index.cl: SCORE_TILE, SCORE_SIDE).
            let keyTiles = (nb + 63) / 64, queryTiles = (qb + 63) / 64
            events.append(try context.launch(program, "block_scores", global: [keyTiles * 16, queryTiles * 16, s], local: [16, 16, 1],
                                             [.buffer(pooledQ), .buffer(pooledK), .buffer(slotBuffer), .buffer(scores), .int(qb), .int(nb),
                                              .int(firstQueryBlock), .int(problem.headsQ), .int(problem.headsKV)]))
        }
        phases.add(.estimation, events)

        let ks = blocks.map { Int32(min($0, nb)) }
        let (selection, selectEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: scores, stride: nb, count: s * qb, length: nb, causal: true, causalFirst: firstQueryBlock, rowsPerGroup: qb,
            kOfGroup: ks), scratch: scratch, role: "block-sparse top-k")
        phases.add(.indices, selectEvent)
        return selection
    }
}
