/// The B-block lists XAttention and FlexPrefill select (docs/PREFILL-METHODS.md 4.8, 5.8): per
/// query block of B rows, a variable number of key blocks of B keys, ascending, attended with the
/// causal mask per element (BlockListAttention).
struct BlockLists {
    /// [slots * queryBlocks, stride] int32: row (slot, b) lists query block blockBase + b's key
    /// blocks, ascending; `counts[row]` of them are valid.
    var lists: DeviceBuffer
    var counts: DeviceBuffer
    var stride: Int
}

/// Geometry and launch of B-block lists over the query blocks of a prefill or of a chunk that
/// starts on a block boundary.
struct BlockListAttention {
    let context: ComputeContext
    let problem: AttentionProblem
    let config: KernelConfig
    let slots: [Int32]
    /// B, a multiple of 64.
    let blockSize: Int

    /// Position of query row 0 (0 in prefill, Nk - Nq for a chunk; a multiple of B).
    var shift: Int { problem.keyLength - problem.queryLength }
    /// Key blocks: ceil(Nk / B).
    var keyBlocks: Int { (problem.keyLength + blockSize - 1) / blockSize }
    /// The block of query row 0.
    var blockBase: Int { shift / blockSize }
    /// Query blocks per slot: the list rows.
    var queryBlocks: Int { keyBlocks - blockBase }

    /// Enqueues the attention over `lists` and the kernel counting the causal pairs they cover;
    /// returns the pairs, [slots * queryBlocks] Int64. The lists run on the dense kernel's tile
    /// configuration (block_list_attention.cl) when B is a multiple of its rows, else on the
    /// sparse kernels' 64-row work-groups (sparse_attention.cl with BLOCK_TILES = B / 64).
    func run(tensors: LayerTensors, slotBuffer: DeviceBuffer, lists: BlockLists, scratch: Scratch, role: String,
             events: inout PhaseEvents) throws -> DeviceBuffer {
        let tiles = blockSize / 64
        if blockSize % config.queryTile == 0 {
            var options = config.buildOptions(problem: problem)
            options.defines["BLOCK_TILES"] = "\(tiles)"
            options.defines["LIST_BLOCK"] = "\(blockSize)"
            let rowBlocks = (problem.queryLength + config.queryTile - 1) / config.queryTile
            events.add(.kernel, try tensors.launch(
                "block_list_attention", file: "block_list_attention.cl", options: options, context: context,
                global: [rowBlocks * config.threads, slots.count], local: [config.threads, 1],
                [.buffer(slotBuffer), .buffer(lists.lists), .buffer(lists.counts), .int(lists.stride),
                 .int(queryBlocks), .int(problem.queryLength), .int(problem.keyLength), .int(problem.headsQ),
                 .int(problem.headsKV), .float(problem.scale * Float.log2e)]))
        } else {
            var options = config.sparse.buildOptions(problem: problem)
            options.defines["BLOCK_TILES"] = "\(tiles)"
            let firstRowBlock = shift / 64
            let rowBlocks = (problem.keyLength + 63) / 64 - firstRowBlock
            events.add(.kernel, try tensors.launch(
                "block_sparse_attention", file: "sparse_attention.cl", options: options, context: context,
                global: [rowBlocks * config.sparse.threads, slots.count], local: [config.sparse.threads, 1],
                [.buffer(slotBuffer), .buffer(lists.lists), .buffer(lists.counts), .int(lists.stride),
                 .int(queryBlocks), .int(problem.queryLength), .int(problem.keyLength), .int(firstRowBlock), .int(problem.headsQ),
                 .int(problem.headsKV), .float(problem.scale * Float.log2e)]))
        }
        let rows = slots.count * queryBlocks
        let pairs = try scratch.buffer("\(role) covered pairs", byteCount: max(1, rows) * 8)
        let program = try context.program(KernelSource.named("block_lists.cl"), options: BuildOptions())
        events.add(.indices, try context.launch(
            program, "block_list_pairs", global: [rows], local: nil,
            [.buffer(lists.lists), .buffer(lists.counts), .int(lists.stride), .int(queryBlocks), .int(blockBase), .int(blockSize),
             .int(shift), .int(problem.keyLength), .buffer(pairs), .int(rows)]))
        return pairs
    }

    /// Each slot's lists on the host (after the queue finished them).
    func download(_ lists: BlockLists, heads: [Int32]) throws -> [BlockSparseHeadIndices] {
        let qb = queryBlocks
        let all = try lists.lists.read(as: Int32.self, count: heads.count * qb * lists.stride)
        let counts = try lists.counts.read(as: Int32.self, count: heads.count * qb)
        return heads.enumerated().map { slot, head in
            BlockSparseHeadIndices(head: Int(head), selected: (0..<qb).map { b in
                let row = slot * qb + b
                return Array(all[(row * lists.stride)..<(row * lists.stride + Int(counts[row]))])
            }, firstQueryBlock: blockBase, blockSize: blockSize)
        }
    }
}
