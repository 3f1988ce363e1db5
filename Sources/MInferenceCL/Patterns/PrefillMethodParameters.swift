/// XAttention's parameters (upstream `xattention_forward`, minference/modules/xattention.py; the
/// defaults are upstream's). docs/PREFILL-METHODS.md section 4.
///
/// Each `blockSize` x `blockSize` block (query block m, key block n) is scored by the softmax
/// mass of its strided antidiagonal sums, and each query block keeps the smallest set of key
/// blocks, largest first, whose mass reaches `threshold` of its row; the diagonal block and key
/// block 0 are always kept.
public struct XAttentionParameters: Sendable, Hashable, CustomStringConvertible {
    /// τ: the share of each query block's estimated mass to cover, in (0, 1]; default 0.9.
    public var threshold: Double
    /// S: the antidiagonal length and downsampling factor; divides `blockSize`; default 8.
    public var stride: Int
    /// B: query and key block size in tokens, a multiple of 64 up to 512 that divides `chunkSize`
    /// (64, 128, 256 or 512 with the default chunk); default 128 (upstream asserts 128).
    public var blockSize: Int
    /// C: queries per estimation chunk of upstream; only its first chunk's selection rule differs
    /// (docs/PREFILL-METHODS.md 4.7); a multiple of `blockSize`; default 2048.
    public var chunkSize: Int
    /// Extra divisor of the estimate's logits (upstream `norm`), > 0; default 1.
    public var norm: Double

    /// Parameters with upstream's defaults unless given.
    public init(threshold: Double = 0.9, stride: Int = 8, blockSize: Int = 128, chunkSize: Int = 2048, norm: Double = 1) {
        self.threshold = threshold
        self.stride = stride
        self.blockSize = blockSize
        self.chunkSize = chunkSize
        self.norm = norm
    }

    /// Strided rows per block (B / S).
    var stridedRowsPerBlock: Int { blockSize / stride }

    /// `threshold 0.9, stride 8, block 128` (chunk and norm when not the defaults).
    public var description: String {
        var text = "threshold \(threshold), stride \(stride), block \(blockSize)"
        if chunkSize != 2048 { text += ", chunk \(chunkSize)" }
        if norm != 1 { text += ", norm \(norm)" }
        return text
    }

    /// Throws `AttentionError.budget` naming the parameter outside its domain.
    public func validate() throws {
        guard threshold.isFinite, threshold > 0, threshold <= 1 else {
            throw AttentionError.budget("xattention threshold must be in (0, 1], got \(threshold)")
        }
        try validateBlockSize(blockSize, method: "xattention")
        guard stride >= 1, stride <= blockSize, blockSize % stride == 0 else {
            throw AttentionError.budget("xattention stride must divide the block size \(blockSize), got \(stride)")
        }
        guard chunkSize >= blockSize, chunkSize % blockSize == 0, chunkSize <= Int(Int32.max) else {
            throw AttentionError.budget(chunkSize == 2048
                ? "xattention block size must divide upstream's 2048-query estimation chunk (64, 128, 256 or 512), got \(blockSize)"
                : "xattention chunk size must be a positive multiple of the block size \(blockSize), got \(chunkSize)")
        }
        guard norm.isFinite, norm > 0 else { throw AttentionError.budget("xattention norm must be finite and > 0, got \(norm)") }
    }
}

/// FlexPrefill's parameters (upstream `flexprefill_forward`, minference/modules/flexprefill.py;
/// the defaults are upstream's). docs/PREFILL-METHODS.md section 5.
///
/// Per head, the last `blockSize` queries' attention gives a vertical and a slash distribution;
/// a Jensen-Shannon distance below `tau` between it and the pooled block attention makes the
/// head query-aware (pooled block selection), else it is a block vertical-slash head. Budgets
/// come from the cumulative threshold `gamma`, bounded by `minBudget` and `maxBudget` (tokens).
public struct FlexPrefillParameters: Sendable, Hashable, CustomStringConvertible {
    /// γ: the cumulative attention to cover, in (0, 1]; default 0.9.
    public var gamma: Double
    /// τ: the Jensen-Shannon distance under which a head is query-aware, in [0, 1]; default 0.1.
    public var tau: Double
    /// Lower budget bound in tokens, rounded up to blocks (nil: one block); default nil.
    public var minBudget: Int?
    /// Upper budget bound in tokens, rounded up to blocks (nil: none); default nil. When the two
    /// bounds cross, the upper wins for vertical-slash heads and query-aware heads take the lower,
    /// as upstream (docs/PREFILL-METHODS.md 5.4, 5.5).
    public var maxBudget: Int?
    /// Block size in tokens, a multiple of 64 up to 512; default 128 (upstream's, which cannot
    /// be changed there: docs/PREFILL-METHODS.md 5.1).
    public var blockSize: Int

    /// Parameters with upstream's defaults unless given.
    public init(gamma: Double = 0.9, tau: Double = 0.1, minBudget: Int? = nil, maxBudget: Int? = nil, blockSize: Int = 128) {
        self.gamma = gamma
        self.tau = tau
        self.minBudget = minBudget
        self.maxBudget = maxBudget
        self.blockSize = blockSize
    }

    /// Blocks of the lower bound: ceil(minBudget / B), 1 without one.
    var minBlocks: Int { minBudget.map { ($0 + blockSize - 1) / blockSize } ?? 1 }
    /// Blocks of the upper bound, before clamping to the block count.
    var maxBlocks: Int { maxBudget.map { ($0 + blockSize - 1) / blockSize } ?? Int(Int32.max) }

    /// `gamma 0.9, tau 0.1, block 128` (budgets when given).
    public var description: String {
        var text = "gamma \(gamma), tau \(tau)"
        if let minBudget { text += ", min budget \(minBudget)" }
        if let maxBudget { text += ", max budget \(maxBudget)" }
        return text + ", block \(blockSize)"
    }

    /// Throws `AttentionError.budget` naming the parameter outside its domain.
    public func validate() throws {
        guard gamma.isFinite, gamma > 0, gamma <= 1 else {
            throw AttentionError.budget("flexprefill gamma must be in (0, 1], got \(gamma)")
        }
        guard tau.isFinite, tau >= 0, tau <= 1 else { throw AttentionError.budget("flexprefill tau must be in [0, 1], got \(tau)") }
        try validateBlockSize(blockSize, method: "flexprefill")
        for (name, value) in [("min", minBudget), ("max", maxBudget)] {
            if let value, value < 1 || value > Int(Int32.max) {
                throw AttentionError.budget("flexprefill \(name) budget must be from 1 to \(Int32.max) tokens, got \(value)")
            }
        }
    }
}

/// The block sizes the block-list kernel runs: whole 64-key tiles, at most 8 per block.
private func validateBlockSize(_ blockSize: Int, method: String) throws {
    guard blockSize >= 64, blockSize <= 512, blockSize % 64 == 0 else {
        throw AttentionError.budget("\(method) block size must be a multiple of 64 from 64 to 512, got \(blockSize)")
    }
}
