/// The device memory a layer run allocates, known before anything is allocated: q, k, v and the
/// output, plus the scratch buffers of each pattern group (groups run one after the other, so the
/// peak is the tensors plus the largest group). Used to refuse a request with a
/// `DeviceMemoryError` instead of failing part-way through it.
public struct DeviceMemoryPlan: Sendable, Hashable {
    /// q, k, v and the output.
    public var tensorBytes: Int
    /// Scratch of the largest pattern group (estimation, index and selection buffers).
    public var scratchBytes: Int
    /// The size in bytes of the largest single buffer, checked against
    /// ``ComputeContext/maxAllocation`` (`CL_DEVICE_MAX_MEM_ALLOC_SIZE` or the memory limit).
    public var largestBytes = 0
    /// What the largest single buffer holds (`q`, `k`, `output`, or a scratch buffer's role), for
    /// the error message.
    public var largestLabel = ""

    /// Bytes the run holds at its peak: ``tensorBytes`` plus ``scratchBytes`` (saturating at
    /// `Int.max`), checked against ``ComputeContext/memoryBudget``.
    public var peakBytes: Int { tensorBytes.addingSaturating(scratchBytes) }

    /// The plan of `plan` (nil: dense on every head) over `problem` with `options`, on a device
    /// described by `info` (its local memory picks the estimation path as the engine does).
    public init(problem: AttentionProblem, plan: LayerPlan?, options: SparseOptions = SparseOptions(), device info: DeviceInfo) {
        let p = problem
        let qBytes = Self.bytes(p.batch, p.headsQ, p.queryLength, p.headDim, p.inputDType.byteCount)
        let kBytes = Self.bytes(p.batch, p.headsKV, p.keyLength, p.headDim, p.inputDType.byteCount)
        let oBytes = Self.bytes(p.batch, p.headsQ, p.queryLength, p.headDim, p.outputDType.byteCount)
        tensorBytes = [qBytes, kBytes, kBytes, oBytes].reduce(0) { $0.addingSaturating($1) }
        scratchBytes = 0
        note("q", qBytes)
        note("k", kBytes)
        note("output", oBytes)

        let heads = plan?.heads ?? Array(repeating: .dense, count: p.headsQ)
        let profile = DeviceProfile.profile(for: info)
        // Estimation and index buffers scale with the key length (the whole prompt for a chunk).
        let n = p.keyLength, d = p.headDim
        var groups: [Int] = []
        func count(_ kind: HeadPattern.Kind) -> Int {
            let executed = heads.map { pattern -> HeadPattern.Kind in
                guard pattern.kind != .dense, p.queryLength > 1 || p.keyLength == 1 else { return .dense }
                return options.denseFallback == .automatic && n < profile.denseThreshold(pattern.kind) ? .dense : pattern.kind
            }
            return p.batch * executed.count(where: { $0 == kind })
        }
        groups.append(Self.bytes(count(.dense), 4))
        groups.append(Self.bytes(count(.aShape), 12))
        groups.append(Self.bytes(count(.triShape), 12))

        let vs = count(.verticalSlash)
        if vs > 0 {
            let lastRows = min(VerticalSlashPipeline.lastQueries, p.queryLength)
            let budgets = heads.compactMap { pattern -> (Int, Int)? in
                guard case .verticalSlash(let v, let s) = pattern else { return nil }
                return VerticalSlashPipeline.clamp(vertical: v, slash: s, length: n)
            }
            let nnzV = max(1, budgets.map(\.0).max() ?? 1), nnzS = max(1, budgets.map(\.1).max() ?? 1)
            let rows = vs.multipliedSaturating(by: (n + VerticalSlashPipeline.rowBlock - 1) / VerticalSlashPipeline.rowBlock)
            let logits = Self.bytes(vs, lastRows, n, 4)
            let estimation = options.estimation ?? profile.estimation
            let fused = estimation == .fused && VerticalSlashPipeline.lastQueries * d * 4 <= max(info.localMemoryBytes - 1024, 0)
            var widened = 0
            if !fused {
                widened = Self.bytes(vs, lastRows, d, 4)
                if p.inputDType != .f32 { widened = widened.addingSaturating(Self.bytes(p.batch, p.headsKV, n, d, 4)) }
            }
            let scores = Self.bytes(2, vs, n, 4)
            let estimate = [logits, widened, Self.bytes(2, vs, lastRows, 4), scores].reduce(0) { $0.addingSaturating($1) }
            let selection = Self.bytes(2, vs, max(nnzV, nnzS), 4)
            let blockOffset = Self.bytes(rows, nnzS, 4), columnIndex = Self.bytes(rows, nnzV, 4)
            let index = [scores, selection, blockOffset, columnIndex, Self.bytes(rows, 16)].reduce(0) { $0.addingSaturating($1) }
            groups.append(max(estimate, index))
            note("vertical-slash logits", logits)
            note("block_offset", blockOffset)
            note("column_index", columnIndex)
        }

        let bs = count(.blockSparse)
        if bs > 0 {
            let nb = n / BlockSparsePipeline.block + 1
            let blocks = heads.compactMap { pattern -> Int? in
                guard case .blockSparse(let b) = pattern else { return nil }
                return min(b, nb)
            }
            let stride = max(1, blocks.max() ?? 1)
            let pooled = Self.bytes(bs, nb, d, 4).addingSaturating(Self.bytes(p.batch, p.headsKV, nb, d, 4))
            let scores = Self.bytes(bs, nb, nb, 4)
            let selection = Self.bytes(bs, nb, stride, 4).addingSaturating(Self.bytes(bs, nb, 4))
            groups.append([pooled, scores, selection].reduce(0) { $0.addingSaturating($1) })
            note("block scores", scores)
            note("top-k indices", Self.bytes(bs, nb, stride, 4))
        }
        let xa = count(.xAttention)
        if xa > 0, let x = heads.lazy.compactMap({ pattern -> XAttentionParameters? in
            if case .xAttention(let x) = pattern { return x } else { return nil }
        }).first {
            let nb = (n + x.blockSize - 1) / x.blockSize, columns = (n + x.stride - 1) / x.stride
            let element = p.inputDType == .f32 ? 4 : 2
            let keys = Self.bytes(p.batch, p.headsKV, columns, x.stride * d, element)
            // (tensor cores keep A in the input dtype; CLBlast in fp32: the larger bounds both)
            let rowsPerChunk = max(1, min(nb, XAttentionPipeline.chunkBytes / max(1, Self.bytes(xa, x.stridedRowsPerBlock, columns, 4))))
                * x.stridedRowsPerBlock
            let antidiagonal = Self.bytes(xa, rowsPerChunk, columns, 4)
            let queries = Self.bytes(xa, rowsPerChunk, x.stride * d, element)
            let scores = Self.bytes(xa, nb, nb, 4)
            groups.append([keys, antidiagonal, queries, scores, scores, Self.bytes(xa, nb, 12)].reduce(0) { $0.addingSaturating($1) })
            note("xattention antidiagonal scores", antidiagonal)
            note("xattention block scores", scores)
        }

        let fp = count(.flexPrefill)
        if fp > 0, let f = heads.lazy.compactMap({ pattern -> FlexPrefillParameters? in
            if case .flexPrefill(let f) = pattern { return f } else { return nil }
        }).first {
            let nb = (n + f.blockSize - 1) / f.blockSize, lastRows = min(f.blockSize, p.queryLength)
            let logits = Self.bytes(fp, lastRows, n, 4)
            let estimate = [logits, Self.bytes(p.batch, p.headsKV, n, d, 4), Self.bytes(2, fp, n, 4)].reduce(0) { $0.addingSaturating($1) }
            let pooled = Self.bytes(fp, nb, nb, 4)
            // pooled attention, its top-k, the row lists and their flags
            let index = [pooled, pooled, pooled, Self.bytes(fp, nb, nb), Self.bytes(4, fp, nb, 4)].reduce(0) { $0.addingSaturating($1) }
            groups.append(estimate.addingSaturating(index))
            note("flexprefill pooled attention", pooled)
            note("last-query logits", logits)
        }
        // The non-finite scan's key flags (a byte per key; 1 without a scan) and its count live
        // beside every group's buffers.
        let keyFlags = options.assumeFinite ? 1 : Self.bytes(p.batch, p.headsKV, n)
        note("key flags", keyFlags)
        scratchBytes = (groups.max() ?? 0).addingSaturating(keyFlags.addingSaturating(4))
    }

    private mutating func note(_ label: String, _ bytes: Int) {
        if bytes > largestBytes { (largestLabel, largestBytes) = (label, bytes) }
    }

    /// The product of the factors, saturating at Int.max.
    static func bytes(_ factors: Int...) -> Int {
        factors.reduce(1) { $0.multipliedSaturating(by: $1) }
    }

}

extension AttentionEngine {
    /// Refuses, before anything is allocated, a run whose largest buffer is over the device's
    /// allocation limit or whose peak memory is over the device's memory (or the context's
    /// memory limit), with a `DeviceMemoryError` naming the buffer or the totals.
    public func checkDeviceMemory(problem: AttentionProblem, plan: LayerPlan?, options: SparseOptions = SparseOptions()) throws {
        let memory = DeviceMemoryPlan(problem: problem, plan: plan, options: options, device: context.device.info)
        let name = context.device.info.name
        if memory.largestBytes > context.maxAllocation {
            throw DeviceMemoryError.overAllocationLimit(label: memory.largestLabel, bytes: memory.largestBytes,
                                                       limit: context.maxAllocation, device: name,
                                                       limitName: context.allocationLimitName)
        }
        if memory.peakBytes > context.memoryBudget {
            throw DeviceMemoryError.overDeviceMemory(what: "\(problem) (q, k, v, output and scratch)", bytes: memory.peakBytes,
                                                    available: context.memoryBudget, device: name,
                                                    limitName: context.memoryBudgetName)
        }
    }
}

extension Int {
    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    func multipliedSaturating(by other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
