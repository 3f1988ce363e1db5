/// What an attention call computes, independent of how: shapes, element types, mask and scale.
///
/// q is `[B, Hq, Nq, d]` (or `[Hq, Nq, d]`), k and v are `[B, Hkv, Nk, d]`; query head h reads
/// KV head `h / (Hq / Hkv)`. Causal with `Nq < Nk` places query i at key position `Nk - Nq + i`.
public struct AttentionProblem: Sendable, Hashable, CustomStringConvertible {
    public var batch: Int
    public var headsQ: Int
    public var headsKV: Int
    public var queryLength: Int
    public var keyLength: Int
    public var headDim: Int
    public var inputDType: DType
    /// The output's element type (default: the input's). An f16 output saturates: results whose
    /// magnitude exceeds 65504 are stored as ±inf (`Tensor.infinityCount()` counts them; the CLI
    /// warns). Rows that see no key at all (causal with Nq > Nk) are written as zeros.
    public var outputDType: DType
    public var causal: Bool
    /// Multiplies q.k before the softmax; 1/sqrt(d) unless set.
    public var scale: Float

    /// Head dims the kernels are built for: every multiple of 8 up to this.
    public static let maxHeadDim = 256

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

    public var queryShape: [Int] { [batch, headsQ, queryLength, headDim] }
    public var keyShape: [Int] { [batch, headsKV, keyLength, headDim] }
    public var groupSize: Int { headsQ / headsKV }

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

    public var description: String {
        "B=\(batch) Hq=\(headsQ) Hkv=\(headsKV) Nq=\(queryLength) Nk=\(keyLength) d=\(headDim) \(inputDType)->\(outputDType) \(causal ? "causal" : "non-causal") scale=\(scale)"
    }
}

/// A request the library refuses, naming the violated rule.
public enum AttentionError: Error, CustomStringConvertible, Sendable, Equatable {
    case shape(String)
    case dtype(String)
    case unsupported(String)
    case invalidArgument(String)
    case budget(String)
    case nonFinite(tensor: String, index: [Int], value: Float)

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
