import COpenCL

/// Sequences of different lengths packed along the token axis, as FlashAttention's varlen API
/// takes them: `cu_seqlens` are cumulative start offsets, so sequence s holds queries
/// `cuSeqlensQ[s] ..< cuSeqlensQ[s + 1]` of the packed q and keys `cuSeqlensK[s] ..< cuSeqlensK[s + 1]`
/// of the packed k and v. Each sequence attends only to itself.
///
/// With `cuSeqlensK` equal to `cuSeqlensQ` every sequence is a prefill; with longer key ranges
/// each sequence is a chunk of its prefill (its queries at the end of its keys, as in
/// `AttentionProblem`), the packed form of chunked prefill against a KV cache.
public struct VariableLengthBatch: Sendable, Hashable {
    /// `[sequences + 1]` query offsets, starting at 0, non-decreasing.
    public let cuSeqlensQ: [Int]
    /// `[sequences + 1]` key offsets, starting at 0, non-decreasing.
    public let cuSeqlensK: [Int]
    /// Hq, query heads of every sequence.
    public let headsQ: Int
    /// Hkv, key and value heads of every sequence (Hq a multiple of it).
    public let headsKV: Int
    /// d, channels per head.
    public let headDim: Int
    /// The element type of q, k and v.
    public let inputDType: DType
    /// The output's element type.
    public let outputDType: DType
    /// Whether each sequence's queries see only its keys up to their positions (its queries at
    /// the end of its keys).
    public let causal: Bool
    /// nil: 1/sqrt(d).
    public let scale: Float?

    /// A batch of `cuSeqlensQ.count - 1` sequences with the dimensions they share, checked.
    ///
    /// - Parameters:
    ///   - cuSeqlensQ: cumulative query offsets, `[0, n0, n0 + n1, ...]`. A sequence may have no
    ///     queries (it is skipped).
    ///   - cuSeqlensK: cumulative key offsets (default: `cuSeqlensQ`, every sequence a prefill).
    ///   - headsQ: Hq, as in `AttentionProblem`.
    ///   - headsKV: Hkv; Hq must be a multiple of it.
    ///   - headDim: d, a multiple of 8 up to `AttentionProblem.maxHeadDim`.
    ///   - inputDType: the element type of q, k and v.
    ///   - outputDType: the output's element type (nil: `inputDType`).
    ///   - causal: the causal mask within each sequence (default true; the sparse patterns need it).
    ///   - scale: the factor on q.k before the softmax (nil: `1 / sqrt(d)`).
    /// - Throws: `AttentionError.shape` for offsets that do not start at 0, decrease, differ in
    ///   count, or give a sequence more queries than keys under a causal mask when it has keys;
    ///   the errors of `AttentionProblem` for the head counts, head dim and scale.
    public init(cuSeqlensQ: [Int], cuSeqlensK: [Int]? = nil, headsQ: Int, headsKV: Int, headDim: Int, inputDType: DType,
                outputDType: DType? = nil, causal: Bool = true, scale: Float? = nil) throws {
        let cuSeqlensK = cuSeqlensK ?? cuSeqlensQ
        for (name, offsets) in [("cu_seqlens_q", cuSeqlensQ), ("cu_seqlens_k", cuSeqlensK)] {
            guard offsets.first == 0, offsets.count >= 2 else {
                throw AttentionError.shape("\(name) must start at 0 and hold at least one sequence ([0, n0, ...]); got \(offsets)")
            }
            if let s = offsets.indices.dropFirst().first(where: { offsets[$0] < offsets[$0 - 1] }) {
                throw AttentionError.shape("\(name) decreases at sequence \(s - 1): \(offsets[s - 1]) then \(offsets[s])")
            }
        }
        guard cuSeqlensQ.count == cuSeqlensK.count else {
            throw AttentionError.shape("cu_seqlens_q has \(cuSeqlensQ.count - 1) sequences, cu_seqlens_k \(cuSeqlensK.count - 1)")
        }
        self.cuSeqlensQ = cuSeqlensQ
        self.cuSeqlensK = cuSeqlensK
        self.headsQ = headsQ
        self.headsKV = headsKV
        self.headDim = headDim
        self.inputDType = inputDType
        self.outputDType = outputDType ?? inputDType
        self.causal = causal
        self.scale = scale
        // The shared dimensions are checked once, on a one-token problem.
        _ = try AttentionProblem(headsQ: headsQ, headsKV: headsKV, queryLength: 1, keyLength: 1, headDim: headDim,
                                 inputDType: inputDType, outputDType: outputDType, causal: causal, scale: scale)
        for s in 0..<sequenceCount where queryLength(s) > 0 && keyLength(s) == 0 {
            throw AttentionError.shape("sequence \(s) has \(queryLength(s)) queries and no keys")
        }
    }

    /// The number of sequences, `cuSeqlensQ.count - 1`.
    public var sequenceCount: Int { cuSeqlensQ.count - 1 }
    /// Packed queries, the N of q's logical shape `[Hq, totalQueries, d]`.
    public var totalQueries: Int { cuSeqlensQ.last! }
    /// Packed keys, the N of k's and v's logical shape `[Hkv, totalKeys, d]`.
    public var totalKeys: Int { cuSeqlensK.last! }
    /// The number of queries of sequence `s` (0 ..< ``sequenceCount``), possibly 0.
    public func queryLength(_ s: Int) -> Int { cuSeqlensQ[s + 1] - cuSeqlensQ[s] }
    /// The number of keys of sequence `s` (0 ..< ``sequenceCount``).
    public func keyLength(_ s: Int) -> Int { cuSeqlensK[s + 1] - cuSeqlensK[s] }

    /// The problem of sequence `s` alone (batch 1); nil for a sequence without queries.
    public func problem(sequence s: Int) throws -> AttentionProblem? {
        guard queryLength(s) > 0 else { return nil }
        return try AttentionProblem(headsQ: headsQ, headsKV: headsKV, queryLength: queryLength(s), keyLength: keyLength(s),
                                    headDim: headDim, inputDType: inputDType, outputDType: outputDType, causal: causal, scale: scale)
    }

    /// The rows of sequence s in a packed tensor (logical `[H, total, d]`), as a view.
    func view(of tensor: DeviceTensor, start: Int, length: Int) throws -> DeviceTensor {
        try DeviceTensor(buffer: tensor.buffer, dtype: tensor.dtype, shape: [tensor.shape[0], length, tensor.shape[2]],
                         strides: tensor.strides, offset: tensor.offset + start * tensor.strides[1])
    }

    /// Checks a packed tensor's logical shape `[heads, total, d]`.
    func checkPacked(_ name: String, _ tensor: DeviceTensor, heads: Int, total: Int) throws {
        guard tensor.shape == [heads, total, headDim] else {
            throw AttentionError.shape("packed \(name) has shape \(tensor.shape); the batch needs [\(heads), \(total), \(headDim)] ([H, total tokens, d])")
        }
    }
}

extension AttentionEngine {
    /// Enqueues `plan` over every sequence of a packed variable-length batch, each attending only to
    /// itself with its own index building, and returns without waiting (as
    /// `enqueue(problem:q:k:v:output:plan:options:workspace:waitingFor:)`): the event of the last
    /// command.
    ///
    /// - Parameters:
    ///   - batch: the cumulative sequence offsets and the shared dimensions.
    ///   - q: packed queries, logical shape `[Hq, totalQueries, d]` in any `DeviceTensor` layout
    ///     (FlashAttention's `[total, H, d]` is `DeviceTensor.tokenMajorStrides`).
    ///   - k: packed keys, `[Hkv, totalKeys, d]`.
    ///   - v: packed values, shaped like k.
    ///   - output: shaped like q, in the batch's output dtype; rows of each sequence are written
    ///     where its queries are.
    ///   - plan: one pattern per query head, used by every sequence (each with its own indices).
    ///   - options: as in `enqueue(problem:...)`.
    ///   - workspace: buffers reused by the sequences one after the other, and across calls.
    ///   - events: commands the first sequence waits for.
    /// - Returns: the event of the last command (a marker on `events` when no sequence has queries).
    /// - Throws: as `enqueue(problem:...)`, with the sequence named; `AttentionError.shape` for
    ///   packed tensors of the wrong shape.
    @discardableResult
    public func enqueue(batch: VariableLengthBatch, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                        plan: LayerPlan, options: SparseOptions = SparseOptions(), workspace: Workspace? = nil,
                        waitingFor events: [CommandEvent] = []) throws -> CommandEvent {
        var last: CommandEvent?
        try forEachSequence(batch: batch, q: q, k: k, v: v, output: output, workspace: workspace) { s, problem, views, scratch in
            let encoded = try encode(problem: problem, q: views.q, k: views.k, v: views.v, output: views.output, plan: plan,
                                     options: options, waitingFor: last == nil ? events : [], scratch: scratch)
            last = encoded.last
        }
        try check(clFlush(context.queue), "clFlush", device: context.device.info.name)
        if let last { return last }
        return try context.marker(waitingFor: events)
    }

    /// Runs `plan` over every sequence of a packed variable-length batch and waits; returns each
    /// sequence's report (nil for a sequence without queries). Throws as `enqueue(batch:...)`.
    public func run(batch: VariableLengthBatch, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                    plan: LayerPlan, options: SparseOptions = SparseOptions(), workspace: Workspace? = nil) throws -> [LayerResult?] {
        var reports = [LayerResult?](repeating: nil, count: batch.sequenceCount)
        try forEachSequence(batch: batch, q: q, k: k, v: v, output: output, workspace: workspace) { s, problem, views, scratch in
            let encoded = try encode(problem: problem, q: views.q, k: views.k, v: views.v, output: views.output, plan: plan,
                                     options: options, waitingFor: [], scratch: scratch)
            // Read before the next sequence reuses the workspace's buffers.
            reports[s] = try encoded.report(collectIndices: options.collectIndices)
        }
        return reports
    }

    private func forEachSequence(batch: VariableLengthBatch, q: DeviceTensor, k: DeviceTensor, v: DeviceTensor, output: DeviceTensor,
                                 workspace: Workspace?,
                                 _ body: (Int, AttentionProblem, SequenceViews, Scratch) throws -> Void) throws {
        try batch.checkPacked("q", q, heads: batch.headsQ, total: batch.totalQueries)
        try batch.checkPacked("k", k, heads: batch.headsKV, total: batch.totalKeys)
        try batch.checkPacked("v", v, heads: batch.headsKV, total: batch.totalKeys)
        try batch.checkPacked("output", output, heads: batch.headsQ, total: batch.totalQueries)
        try withScratch(workspace) { scratch in
            for s in 0..<batch.sequenceCount {
                guard let problem = try batch.problem(sequence: s) else { continue }
                let (q0, k0) = (batch.cuSeqlensQ[s], batch.cuSeqlensK[s])
                let views = SequenceViews(
                    q: try batch.view(of: q, start: q0, length: problem.queryLength),
                    k: try batch.view(of: k, start: k0, length: problem.keyLength),
                    v: try batch.view(of: v, start: k0, length: problem.keyLength),
                    output: try batch.view(of: output, start: q0, length: problem.queryLength))
                do {
                    try body(s, problem, views, scratch)
                } catch let error as AttentionError {
                    throw error.prefixed("sequence \(s): ")
                }
            }
        }
    }
}

/// One sequence's rows of the packed q, k, v and output.
private struct SequenceViews {
    var q: DeviceTensor
    var k: DeviceTensor
    var v: DeviceTensor
    var output: DeviceTensor
}

extension AttentionError {
    /// The same error with `prefix` before its message.
    func prefixed(_ prefix: String) -> AttentionError {
        switch self {
        case .shape(let m): .shape(prefix + m)
        case .dtype(let m): .dtype(prefix + m)
        case .unsupported(let m): .unsupported(prefix + m)
        case .invalidArgument(let m): .invalidArgument(prefix + m)
        case .budget(let m): .budget(prefix + m)
        case .nonFinite: self
        }
    }
}
