/// The estimate of the last queries' attention (CLKernels/vertical_slash_estimate.cl): per slot,
/// the softmax attention of the last `lastQueries` queries (of the chunk) summed per key column
/// and per diagonal. Vertical-slash reads it with upstream's 64 queries and forced entries
/// (docs/MINFERENCE.md section 4), FlexPrefill with its block size of queries and none
/// (docs/PREFILL-METHODS.md 5.3).
struct LastQueryEstimate {
    let context: ComputeContext
    let problem: AttentionProblem
    /// Flattened query head of each slot.
    let slots: [Int32]
    let lastQueries: Int
    /// Columns 0..<forcedColumns and diagonals 0..<forcedDiagonals score +inf.
    let forcedColumns: Int
    let forcedDiagonals: Int
    let backend: DeviceProfile.EstimationBackend
    let scratch: Scratch

    var n: Int { problem.keyLength }
    /// Queries read: the last `lastQueries` of the chunk, all of it when shorter.
    var lastRows: Int { min(lastQueries, problem.queryLength) }

    /// Column scores then diagonal scores, [2 * slots, n] fp32, as one estimation phase.
    func scores(q: DeviceTensor, k: DeviceTensor, slotBuffer: DeviceBuffer, events phases: inout PhaseEvents) throws -> DeviceBuffer {
        let s = slots.count, d = problem.headDim
        var options = BuildOptions(defines: ["INPUT_DTYPE": problem.inputDType.kernelName, "HEAD_DIM": "\(d)"])
        options.defines["OUTPUT_DTYPE"] = "DTYPE_F32"
        options.defines["LAST_Q"] = "\(lastQueries)"
        options.defines["FORCED_COLUMNS"] = "\(forcedColumns)"
        options.defines["FORCED_DIAGONALS"] = "\(forcedDiagonals)"
        let program = try context.program(KernelSource.named("vertical_slash_estimate.cl"), options: options)
        let logits = try scratch.buffer("last-query logits", byteCount: s * lastRows * n * 4)
        var events: [CommandEvent] = []
        let useFused = backend == .fused && lastQueries * d * 4 <= max(context.device.info.localMemoryBytes - 1024, 0)
        if useFused {
            events.append(try context.launch(
                program, "vs_logits", global: [n, s], local: [64, 1],
                [.buffer(q.buffer), .layout(q.layout), .buffer(k.buffer), .layout(k.layout), .buffer(slotBuffer), .buffer(logits),
                 .int(problem.queryLength), .int(n), .int(problem.headsQ), .int(problem.headsKV), .float(problem.scale)]))
        } else {
            let lastQ = try scratch.buffer("last queries", byteCount: s * lastRows * d * 4)
            events.append(try context.launch(
                program, "vs_gather_last_queries", global: [lastRows * d, s], local: nil,
                [.buffer(q.buffer), .layout(q.layout), .buffer(slotBuffer), .buffer(lastQ), .int(problem.queryLength),
                 .int(problem.headsQ), .float(problem.scale)]))
            // CLBlast reads fp32 rows d apart: other keys are widened (and packed) first.
            let kvOf = slots.map { problem.kvHead(ofFlattened: Int($0)) }
            var keys = k.buffer
            var keyOffsets = kvOf.map { kv in k.layout.offset + (kv / problem.headsKV) * k.layout.batchStride + (kv % problem.headsKV) * k.layout.headStride }
            if problem.inputDType != .f32 || k.layout.tokenStride != d {
                let kvHeads = problem.batch * problem.headsKV
                keys = try scratch.buffer("keys as fp32", byteCount: kvHeads * n * d * 4)
                events.append(try context.launch(program, "widen_to_float", global: [d, n, kvHeads], local: nil,
                                                 [.buffer(k.buffer), .layout(k.layout), .buffer(keys), .int(n), .int(problem.headsKV)]))
                keyOffsets = kvOf.map { $0 * n * d }
            }
            events.append(try CLBlastGEMM.multiplyTransposed(
                context: context, m: lastRows, n: n, k: d,
                a: lastQ, aOffsets: (0..<s).map { $0 * lastRows * d },
                b: keys, bOffsets: keyOffsets,
                c: logits, cOffsets: (0..<s).map { $0 * lastRows * n }))
        }
        let rowMax = try scratch.buffer("row max", byteCount: s * lastRows * 4)
        let rowInvSum = try scratch.buffer("row 1/sum", byteCount: s * lastRows * 4)
        events.append(try context.launch(program, "vs_row_stats", global: [256 * lastRows, s], local: [256, 1],
                                         [.buffer(logits), .buffer(rowMax), .buffer(rowInvSum), .int(lastRows), .int(n)]))
        let scores = try scratch.buffer("vertical/slash scores", byteCount: 2 * s * n * 4)
        events.append(try context.launch(program, "vs_scores", global: [n, s], local: nil,
                                         [.buffer(logits), .buffer(rowMax), .buffer(rowInvSum), .buffer(scores), .int(lastRows), .int(n), .int(s)]))
        phases.add(.estimation, events)
        return scores
    }
}
