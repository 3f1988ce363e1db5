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

    var n: Int { problem.queryLength }
    /// Upstream pads N by 64 - N % 64 (a whole block when N is a multiple of 64).
    var paddedBlocks: Int { n / Self.block + 1 }
    var rowBlocks: Int { (n + Self.block - 1) / Self.block }

    func run(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, output: DeviceBuffer, slotBuffer: DeviceBuffer,
             timing: inout PhaseTiming) throws -> TopKKernel.Selection {
        let selection = try select(q: q, k: k, slotBuffer: slotBuffer, timing: &timing)
        let attention = try context.program(
            KernelSource.named("sparse_attention.cl"),
            options: config.sparse.buildOptions(problem: problem))
        let event = try context.launch(
            attention, "block_sparse_attention", global: [rowBlocks * config.sparse.threads, slots.count], local: [config.sparse.threads, 1],
            [.buffer(q), .buffer(k), .buffer(v), .buffer(output), .buffer(slotBuffer), .buffer(selection.indices),
             .buffer(selection.counts), .int(selection.stride), .int(paddedBlocks), .int(n), .int(problem.headsQ),
             .int(problem.headsKV), .float(problem.scale * Float.log2e)])
        try timing.add(.kernel, event)
        return selection
    }

    /// The estimate and top-k without the attention kernel: the key blocks of every slot's
    /// query blocks ([slots * paddedBlocks, stride], the layout block_sparse_attention reads).
    func select(q: DeviceBuffer, k: DeviceBuffer, slotBuffer: DeviceBuffer, timing: inout PhaseTiming) throws -> TopKKernel.Selection {
        let nb = paddedBlocks, s = slots.count, d = problem.headDim
        let program = try context.program(
            KernelSource.named("block_sparse_index.cl"),
            options: BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "\(d)"]))
        let kvHeads = problem.batch * problem.headsKV
        let pooledQ = try scratch.buffer("pooled q", byteCount: s * nb * d * 4)
        let pooledK = try scratch.buffer("pooled k", byteCount: kvHeads * nb * d * 4)
        let kvSlots = try scratch.copying((0..<kvHeads).map { Int32($0) }, "kv slots")
        var events: [CommandEvent] = []
        events.append(try context.launch(program, "block_mean_pool", global: [d, nb, s], local: nil,
                                         [.buffer(q), .buffer(slotBuffer), .buffer(pooledQ), .int(n), .int(nb)]))
        events.append(try context.launch(program, "block_mean_pool", global: [d, nb, kvHeads], local: nil,
                                         [.buffer(k), .buffer(kvSlots), .buffer(pooledK), .int(n), .int(nb)]))
        let scores = try scratch.buffer("block scores", byteCount: s * nb * nb * 4)
        if scoring == .clblast {
            let kvOf = slots.map { head -> Int in
                let h = Int(head)
                return (h / problem.headsQ) * problem.headsKV + (h % problem.headsQ) / problem.groupSize
            }
            events.append(try CLBlastGEMM.multiplyTransposed(
                context: context, m: nb, n: nb, k: d, a: pooledQ, aOffsets: (0..<s).map { $0 * nb * d },
                b: pooledK, bOffsets: kvOf.map { $0 * nb * d }, c: scores, cOffsets: (0..<s).map { $0 * nb * nb }))
        } else {
            // 64 x 64 scores per work-group of 16 x 16 (block_sparse_index.cl: SCORE_TILE, SCORE_SIDE).
            let tiles = (nb + 63) / 64
            events.append(try context.launch(program, "block_scores", global: [tiles * 16, tiles * 16, s], local: [16, 16, 1],
                                             [.buffer(pooledQ), .buffer(pooledK), .buffer(slotBuffer), .buffer(scores), .int(nb),
                                              .int(problem.headsQ), .int(problem.headsKV)]))
        }
        try timing.add(.estimation, events)

        let ks = blocks.map { Int32(min($0, nb)) }
        let (selection, selectEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: scores, stride: nb, count: s * nb, length: nb, causal: true, rowsPerGroup: nb, kOfGroup: ks),
            scratch: scratch, role: "block-sparse top-k")
        try timing.add(.indices, selectEvent)
        return selection
    }
}
