/// XAttention heads of a layer, all in one launch per step (docs/PREFILL-METHODS.md section 4,
/// CLKernels/xattention_index.cl): strided antidiagonal scores from a GEMM per chunk of query
/// blocks, their softmax summed per block pair, the threshold count per query block, top-k, then
/// the B-block lists on the block-sparse kernel.
struct XAttentionPipeline {
    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    let parameters: XAttentionParameters
    /// The estimate's GEMM on NVIDIA tensor cores (linear_nv_mma.cl, fp16 operands, fp32 sums; A
    /// stored in fp16 for fp16 inputs) for fp16/bf16 inputs; else CLBlast in fp32.
    let tensorCores: Bool
    var workspace: Workspace? = nil
    var scratch: Scratch { Scratch(context: context, workspace: workspace) }
    /// Bytes of antidiagonal scores one chunk may hold (all slots together).
    static let chunkBytes = 1 << 30

    var blocks: BlockListAttention {
        BlockListAttention(context: context, problem: problem, config: config, slots: slots, blockSize: parameters.blockSize)
    }
    var stride: Int { parameters.stride }
    /// Strided rows (and columns) per block, B / S.
    var rowsPerBlock: Int { parameters.stridedRowsPerBlock }
    /// Strided key columns, ceil(Nk / S): also the strided rows holding a real query.
    var columns: Int { (problem.keyLength + stride - 1) / stride }
    /// Upstream's padded block count, ceil(N / C) C / B: the count of candidate blocks per row.
    var paddedBlocks: Int {
        let c = parameters.chunkSize
        return (problem.keyLength + c - 1) / c * c / parameters.blockSize
    }

    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, events: inout PhaseEvents) throws -> (BlockLists, pairs: DeviceBuffer) {
        let lists = try select(tensors: tensors, slotBuffer: slotBuffer, events: &events)
        let pairs = try blocks.run(tensors: tensors, slotBuffer: slotBuffer, lists: lists, scratch: scratch, role: "xattention",
                                   events: &events)
        return (lists, pairs)
    }

    func select(tensors: LayerTensors, slotBuffer: DeviceBuffer, events phases: inout PhaseEvents) throws -> BlockLists {
        let s = slots.count, d = problem.headDim, width = stride * d
        let geometry = blocks
        let qb = geometry.queryBlocks, nb = geometry.keyBlocks, base = geometry.blockBase
        var options = BuildOptions(defines: [
            "INPUT_DTYPE": problem.inputDType.kernelName, "OUTPUT_DTYPE": "DTYPE_F32", "HEAD_DIM": "\(d)",
            "XATTN_STRIDE": "\(stride)", "XATTN_BLOCK": "\(parameters.blockSize)"])
        // With fp16 inputs the tensor-core GEMM stores A in fp16 directly (what upstream keeps, and
        // half the bytes). bf16 keeps fp32 A rounded when read: the bf16 store (SCORES_BF16,
        // LINEAR_C_DTYPE 2) has not run on a GPU yet, so it stays off.
        let scoreDType: DType = tensorCores && problem.inputDType == .f16 ? .f16 : .f32
        if tensorCores { options.defines["STRIDED_HALF"] = "1" }
        if scoreDType == .f16 { options.defines["SCORES_F16"] = "1" }
        let program = try context.program(KernelSource.named("xattention_index.cl"), options: options)
        let elementBytes = tensorCores ? 2 : 4
        var events: [CommandEvent] = []

        // K' of every KV head, once.
        let kvHeads = problem.batch * problem.headsKV
        let kvSlots = try scratch.copying((0..<kvHeads).map { Int32($0) }, "xattention kv heads")
        let keys = try scratch.buffer("xattention strided keys", byteCount: max(1, kvHeads * columns * width * elementBytes))
        events.append(try context.launch(program, "xattn_strided_rows", global: [width, columns, kvHeads], local: nil,
                                         [.buffer(tensors.k.buffer), .layout(tensors.k.layout), .buffer(kvSlots), .int(problem.headsKV),
                                          .int(0), .int(columns), .int(problem.keyLength), .int(1), .buffer(keys)]))

        let chunkBlocks = max(1, min(qb, Self.chunkBytes / max(1, s * rowsPerBlock * columns * scoreDType.byteCount)))
        let chunkRows = chunkBlocks * rowsPerBlock
        let queries = try scratch.buffer("xattention strided queries", byteCount: max(1, s * chunkRows * width * elementBytes))
        let antidiagonal = try scratch.buffer("xattention antidiagonal scores",
                                              byteCount: max(1, s * chunkRows * columns * scoreDType.byteCount))
        let scores = try scratch.buffer("xattention block scores", byteCount: max(1, s * qb * nb * 4))
        let kvOf = slots.map { problem.kvHead(ofFlattened: Int($0)) }
        let scaleLog2 = problem.scale / Float(stride) / Float(parameters.norm) * Float.log2e
        let gemm = tensorCores ? try context.program(KernelSource.named("linear_nv_mma.cl"),
                                                     options: BuildOptions(defines: ["LINEAR_C_DTYPE": scoreDType == .f16 ? "1" : "0"]))
                               : nil
        for first in Swift.stride(from: 0, to: qb, by: chunkBlocks) {
            let count = min(chunkBlocks, qb - first)
            let rows = count * rowsPerBlock
            // Causal: the chunk's strided rows see the columns before their end, and no padding column.
            let used = min(columns, (base + first + count) * rowsPerBlock)
            events.append(try context.launch(program, "xattn_strided_rows", global: [width, rows, s], local: nil,
                                             [.buffer(tensors.q.buffer), .layout(tensors.q.layout), .buffer(slotBuffer),
                                              .int(problem.headsQ), .int(first * rowsPerBlock), .int(rows), .int(problem.queryLength),
                                              .int(0), .buffer(queries)]))
            if let gemm {
                for slot in 0..<s {
                    events.append(try context.launch(
                        gemm, "linear_nv_mma", global: [(used + 127) / 128 * 256, (rows + 127) / 128], local: [256, 1],
                        [.buffer(queries), .ulong(UInt64(slot * rows * width)), .buffer(keys), .ulong(UInt64(kvOf[slot] * columns * width)),
                         .buffer(antidiagonal), .ulong(UInt64(slot * rows * used)), .int(rows), .int(used), .int(width), .int(0)]))
                }
            } else {
                events.append(try CLBlastGEMM.multiplyTransposed(
                    context: context, m: rows, n: used, k: width, a: queries, aOffsets: (0..<s).map { $0 * rows * width },
                    b: keys, bOffsets: kvOf.map { $0 * columns * width }, c: antidiagonal, cOffsets: (0..<s).map { $0 * rows * used }))
            }
            events.append(try context.launch(
                program, "xattn_block_sums", global: [128 * count, s], local: [128, 1],
                [.buffer(antidiagonal), .int(used), .int(first), .int(count), .int(base), .int(columns), .buffer(scores),
                 .int(qb), .int(nb), .float(scaleLog2)]))
        }
        phases.add(.estimation, events)

        let ks = try scratch.buffer("xattention counts", byteCount: max(1, s * qb) * 4)
        let countEvent = try context.launch(
            program, "xattn_counts", global: [256 * s * qb], local: [256],
            [.buffer(scores), .int(nb), .int(qb), .int(base), .int(paddedBlocks), .int(parameters.chunkSize / parameters.blockSize),
            ] + KernelArgument.exactDouble(parameters.threshold) + [.buffer(ks)])
        let (selection, selectEvent) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: scores, stride: nb, count: s * qb, length: nb, causal: true, causalFirst: base, rowsPerGroup: qb, kOfGroup: [],
            kBuffer: ks, maxK: nb, rowsPerK: 1), scratch: scratch, role: "xattention top-k")
        phases.add(.indices, [countEvent, selectEvent])
        return BlockLists(lists: selection.indices, counts: selection.counts, stride: selection.stride)
    }
}
