/// What an attention call computes, independent of how: shapes, element types, mask and scale.
///
/// q is `[B, Hq, Nq, d]` (or `[Hq, Nq, d]`), k and v are `[B, Hkv, Nk, d]`; query head h reads
/// KV head `h / (Hq / Hkv)`. Causal with `Nq < Nk` places query i at key position `Nk - Nq + i`.
public struct AttentionProblem: Sendable, Hashable, CustomStringConvertible {
    /// B, the sequences of the batch; each runs the same heads and plan (default 1).
    public var batch: Int
    /// Hq, the query heads (and output heads); a multiple of ``headsKV``.
    public var headsQ: Int
    /// Hkv, the key and value heads; `Hq / Hkv` query heads share each (grouped-query attention).
    public var headsKV: Int
    /// Nq, queries per sequence (tokens).
    public var queryLength: Int
    /// Nk, keys and values per sequence (tokens). `Nq < Nk` is a chunk at the end of the keys.
    public var keyLength: Int
    /// d, channels per head, shared by q, k, v and the output: a multiple of 8 up to ``maxHeadDim``.
    public var headDim: Int
    /// The element type of q, k and v.
    public var inputDType: DType
    /// The output's element type (default: the input's). An f16 output saturates: results whose
    /// magnitude exceeds 65504 are stored as ±inf (`Tensor.infinityCount()` counts them; the CLI
    /// warns). Rows that see no key at all (causal with Nq > Nk) are written as zeros.
    public var outputDType: DType
    /// Whether query i sees only keys up to its position, `Nk - Nq + i` (default true). The sparse
    /// patterns need it; dense attention runs either way.
    public var causal: Bool
    /// Multiplies q.k before the softmax; 1/sqrt(d) unless set.
    public var scale: Float

    /// Head dims the kernels are built for: every multiple of 8 up to this.
    public static let maxHeadDim = 256

    /// A problem of these dimensions, checked.
    ///
    /// - Parameters:
    ///   - batch: B, at least 1 (default 1).
    ///   - headsQ: Hq, at least 1 and a multiple of `headsKV`.
    ///   - headsKV: Hkv, at least 1.
    ///   - queryLength: Nq in tokens, from 1 to 2³¹ − 1.
    ///   - keyLength: Nk in tokens, from 1 to 2³¹ − 1.
    ///   - headDim: d, a multiple of 8 from 8 to ``maxHeadDim``.
    ///   - inputDType: the element type of q, k and v.
    ///   - outputDType: the output's element type (nil: `inputDType`).
    ///   - causal: the causal mask (default true).
    ///   - scale: the factor on q.k before the softmax, positive and finite (nil: `1 / sqrt(d)`).
    /// - Throws: `AttentionError.shape` for a batch, head count or length below 1, or Hq not a
    ///   multiple of Hkv; `AttentionError.unsupported` for another head dim, lengths above
    ///   2³¹ − 1, B × Hq above 2³¹ − 1, or tensors too large to address;
    ///   `AttentionError.invalidArgument` for a scale that is not positive and finite.
    public init(batch: Int = 1, headsQ: Int, headsKV: Int, queryLength: Int, keyLength: Int, headDim: Int,
                inputDType: DType, outputDType: DType? = nil, causal: Bool = true, scale: Float? = nil) throws {
        self.batch = batch
        self.headsQ = headsQ
        self.headsKV = headsKV
        self.queryLength = queryLength
        self.keyLength = keyLength
        self.headDim = headDim
        self.inputDType = inputDType
        self.outputDType = outputDType ?? inputDType
        self.causal = causal
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        try validate()
    }

    /// The problem of tensors with these shapes (rank 3 `[H, N, d]` or rank 4 `[B, H, N, d]`).
    /// Throws `AttentionError.shape` for ranks other than 3 and 4, or shapes that disagree (rank,
    /// batch, head dim, k against v), and the errors of
    /// ``init(batch:headsQ:headsKV:queryLength:keyLength:headDim:inputDType:outputDType:causal:scale:)``.
    public init(q: [Int], k: [Int], v: [Int], dtype: DType, outputDType: DType? = nil, causal: Bool = true,
                scale: Float? = nil) throws {
        for (name, shape) in [("q", q), ("k", k), ("v", v)] where shape.count != 3 && shape.count != 4 {
            throw AttentionError.shape("\(name) has rank \(shape.count) (shape \(shape)); expected [H, N, d] or [B, H, N, d]")
        }
        guard q.count == k.count, k.count == v.count else {
            throw AttentionError.shape("q, k and v must have the same rank; got q \(q), k \(k), v \(v)")
        }
        guard k == v else { throw AttentionError.shape("k \(k) and v \(v) must have the same shape") }
        let q4 = q.count == 3 ? [1] + q : q
        let k4 = k.count == 3 ? [1] + k : k
        guard q4[0] == k4[0] else { throw AttentionError.shape("batch of q (\(q4[0])) differs from batch of k/v (\(k4[0]))") }
        guard q4[3] == k4[3] else {
            throw AttentionError.shape("head dim of q (\(q4[3])) differs from head dim of k/v (\(k4[3]))")
        }
        try self.init(batch: q4[0], headsQ: q4[1], headsKV: k4[1], queryLength: q4[2], keyLength: k4[2], headDim: q4[3],
                      inputDType: dtype, outputDType: outputDType, causal: causal, scale: scale)
    }

    func validate() throws {
        guard batch >= 1 else { throw AttentionError.shape("batch must be at least 1, got \(batch)") }
        guard headsQ >= 1, headsKV >= 1 else { throw AttentionError.shape("head counts must be at least 1 (q \(headsQ), kv \(headsKV))") }
        guard headsQ % headsKV == 0 else {
            throw AttentionError.shape("query heads (\(headsQ)) must be a multiple of KV heads (\(headsKV)) for grouped-query attention")
        }
        guard queryLength >= 1 else { throw AttentionError.shape("query length is \(queryLength): N must be at least 1") }
        guard keyLength >= 1 else { throw AttentionError.shape("key length is \(keyLength): N must be at least 1") }
        guard headDim % 8 == 0, headDim >= 8, headDim <= Self.maxHeadDim else {
            throw AttentionError.unsupported("head dim \(headDim): supported head dims are multiples of 8 from 8 to \(Self.maxHeadDim)")
        }
        guard scale.isFinite, scale > 0 else { throw AttentionError.invalidArgument("scale must be a positive finite number, got \(scale)") }
        guard queryLength <= Int(Int32.max), keyLength <= Int(Int32.max) else {
            throw AttentionError.unsupported("sequence lengths above \(Int32.max) tokens")
        }
        // Element and byte counts (and the kernels' int head indices) must be representable.
        for (name, dims) in [("q", [batch, headsQ, queryLength, headDim]), ("k", [batch, headsKV, keyLength, headDim])] {
            let bytes = dims.reduce(8) { total, d in total.multipliedReportingOverflow(by: d).overflow ? Int.max : total * d }
            guard bytes < Int.max else { throw AttentionError.unsupported("\(name) of shape \(dims) is too large to address") }
        }
        let heads = batch.multipliedReportingOverflow(by: headsQ)
        guard !heads.overflow, heads.partialValue <= Int(Int32.max) else {
            throw AttentionError.unsupported("batch x query heads above \(Int32.max)")
        }
    }

    /// The logical shape of q and of the output: `[B, Hq, Nq, d]`.
    public var queryShape: [Int] { [batch, headsQ, queryLength, headDim] }
    /// The logical shape of k and of v: `[B, Hkv, Nk, d]`.
    public var keyShape: [Int] { [batch, headsKV, keyLength, headDim] }
    /// Query heads per KV head, `Hq / Hkv` (1 without grouped-query attention).
    public var groupSize: Int { headsQ / headsKV }
    /// The flattened KV head (batch * Hkv + kv) that flattened query head `head` (batch * Hq + h)
    /// reads: kv = h / groupSize, as the kernels' `kv_head_of`.
    public func kvHead(ofFlattened head: Int) -> Int { (head / headsQ) * headsKV + (head % headsQ) / groupSize }

    /// Query-key pairs a dense kernel evaluates (causal: the visible triangle or trapezoid).
    public var densePairs: Double {
        guard causal else { return Double(queryLength) * Double(keyLength) }
        let shift = keyLength - queryLength
        var pairs = 0.0
        // Sum over queries of min(Nk, max(0, shift + i + 1)).
        let firstVisible = max(0, -shift)
        let n = Double(queryLength - firstVisible)
        if n > 0 {
            let first = Double(shift + firstVisible + 1)
            pairs = n * first + n * (n - 1) / 2
        }
        return pairs
    }

    /// FLOPs of dense attention (4 * d per pair: QK^T and PV), times all heads.
    public var denseFLOPs: Double { 4 * Double(headDim) * densePairs * Double(batch * headsQ) }

    /// One line for logs and test failures, e.g. `B=1 Hq=32 Hkv=8 Nq=4096 Nk=4096 d=64 f16->f16 causal scale=0.125`.
    public var description: String {
        "B=\(batch) Hq=\(headsQ) Hkv=\(headsKV) Nq=\(queryLength) Nk=\(keyLength) d=\(headDim) \(inputDType)->\(outputDType) \(causal ? "causal" : "non-causal") scale=\(scale)"
    }
}

/// A request the library refuses, naming the violated rule.
public enum AttentionError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Shapes that do not fit together or the problem: ranks, head counts, lengths, strides,
    /// packed variable-length offsets.
    case shape(String)
    /// Element types that differ where they must agree (q, k and v; a tensor and its problem).
    case dtype(String)
    /// A well-formed request outside what the library supports: head dims, sizes past its index
    /// range, a sparse pattern on a non-causal or `Nq > Nk` problem.
    case unsupported(String)
    /// A value or object the call cannot use: a scale, a memory limit, a view past its buffer, a
    /// misaligned or overlapping tensor, an OpenCL object of another context, a busy workspace.
    case invalidArgument(String)
    /// A pattern budget out of range (budgets are whole numbers from 1 to 2³¹ − 1).
    case budget(String)
    /// A NaN or infinity in an input (with `checkFinite`): the tensor's name, the element's index
    /// in its shape and the value.
    case nonFinite(tensor: String, index: [Int], value: Float)

    /// The message with its kind, e.g. `shape error: ...`.
    public var description: String {
        switch self {
        case .shape(let m): "shape error: \(m)"
        case .dtype(let m): "dtype error: \(m)"
        case .unsupported(let m): "unsupported: \(m)"
        case .invalidArgument(let m): "invalid argument: \(m)"
        case .budget(let m): "invalid budget: \(m)"
        case .nonFinite(let tensor, let index, let value): "\(tensor) holds a non-finite value (\(value)) at index \(index)"
        }
    }
}
