/// The attention pattern of one head with its budgets: MInference's three sparse shapes
/// (docs/MINFERENCE.md), upstream's later prefill methods Tri-shape, XAttention and FlexPrefill
/// (docs/PREFILL-METHODS.md), or dense.
///
/// Budgets are whole numbers from 1 to 2^31 - 1 (`validate()`; anything else is refused with
/// `AttentionError.budget`). Budgets larger than the sequence are allowed and clamped, as
/// upstream does: they then cover every causal key, and the head computes dense attention.
public enum HeadPattern: Sendable, Hashable, CustomStringConvertible {
    /// Every causal key.
    case dense
    /// The first `sink` keys plus the last `window` keys up to the query (`window` counts the
    /// query itself); both are clamped to N. Upstream: `stream_llm`, `n_init = sink`,
    /// `n_local = window`.
    case aShape(sink: Int, window: Int)
    /// `vertical` key columns and `slash` diagonals estimated from the last 64 queries, clamped
    /// as upstream does: V = min(N, max(vertical, 30)), S = min(N, max(slash, 50)).
    /// Upstream: `vertical_and_slash`.
    case verticalSlash(vertical: Int, slash: Int)
    /// The `blocks` best 64x64 key blocks per 64-query block, from mean-pooled q and k, clamped
    /// to the block count floor(N / 64) + 1. Upstream: `block_sparse` (always 100 blocks there).
    case blockSparse(blocks: Int)
    /// A-shape for every query but the last `last`, which attend every causal key (upstream:
    /// `tri_shape`, `tri_shape_kernel`; defaults `n_init = 128`, `n_local = 3968`, `n_last = 100`;
    /// docs/PREFILL-METHODS.md section 2). `last` larger than the sequence makes every row dense;
    /// unlike upstream, N = 1 and `last` 0 (plain A-shape) are allowed. In a chunk of a prefill
    /// the last `last` positions of the keys seen so far are the dense rows, which are the
    /// prompt's when the chunk is the last one.
    case triShape(sink: Int, window: Int, last: Int)
    /// XAttention: per query block, the smallest set of key blocks whose antidiagonal-estimated
    /// attention mass reaches `threshold` (upstream: `xattention`, docs/PREFILL-METHODS.md
    /// section 4; the Triton estimate's definition).
    case xAttention(XAttentionParameters)
    /// FlexPrefill: per head, query-aware block selection or block vertical-slash, budgets from a
    /// cumulative-attention threshold (upstream: `flexprefill`, docs/PREFILL-METHODS.md section 5).
    case flexPrefill(FlexPrefillParameters)

    /// Upstream's budgets for a head missing from a config, and for a run without one.
    public static let defaultVerticalSlash = HeadPattern.verticalSlash(vertical: 1000, slash: 6096)
    /// Upstream's whole-model A-shape defaults (`n_init = 128`, `n_local = 3968`).
    public static let defaultAShape = HeadPattern.aShape(sink: 128, window: 3968)
    /// Upstream's block-sparse budget (`top_k = 100`).
    public static let defaultBlockSparse = HeadPattern.blockSparse(blocks: 100)
    /// Upstream's Tri-shape defaults (`n_init = 128`, `n_local = 3968`, `n_last = 100`).
    public static let defaultTriShape = HeadPattern.triShape(sink: 128, window: 3968, last: 100)
    /// Upstream's XAttention defaults (threshold 0.9, stride 8, 128-blocks, 2048-query chunks).
    public static let defaultXAttention = HeadPattern.xAttention(XAttentionParameters())
    /// Upstream's FlexPrefill defaults (gamma 0.9, tau 0.1, no budget bounds, 128-blocks).
    public static let defaultFlexPrefill = HeadPattern.flexPrefill(FlexPrefillParameters())

    /// The kind of pattern without budgets.
    public enum Kind: String, Sendable, Hashable, CaseIterable, Codable {
        /// ``HeadPattern/dense``; raw value `dense`.
        case dense
        /// ``HeadPattern/aShape(sink:window:)``; raw value `a-shape`.
        case aShape = "a-shape"
        /// ``HeadPattern/verticalSlash(vertical:slash:)``; raw value `vertical-slash`.
        case verticalSlash = "vertical-slash"
        /// ``HeadPattern/blockSparse(blocks:)``; raw value `block-sparse`.
        case blockSparse = "block-sparse"
        /// ``HeadPattern/triShape(sink:window:last:)``; raw value `tri-shape`.
        case triShape = "tri-shape"
        /// ``HeadPattern/xAttention(_:)``; raw value `xattention`.
        case xAttention = "xattention"
        /// ``HeadPattern/flexPrefill(_:)``; raw value `flexprefill`.
        case flexPrefill = "flexprefill"

        /// MInference's name for the pattern in its per-head JSON configs (dense and the
        /// whole-model methods have none).
        public var upstreamName: String? {
            switch self {
            case .dense, .triShape, .xAttention, .flexPrefill: nil
            case .aShape: "stream_llm"
            case .verticalSlash: "vertical_and_slash"
            case .blockSparse: "block_sparse"
            }
        }

        /// Upstream's `attn_type` for the whole-model methods (`tri_shape`, `xattention`,
        /// `flexprefill`); nil for the per-head patterns.
        public var upstreamAttentionType: String? {
            switch self {
            case .triShape: "tri_shape"
            case .xAttention: "xattention"
            case .flexPrefill: "flexprefill"
            default: nil
            }
        }

        /// Whether the kind selects block lists of its own block size (XAttention, FlexPrefill).
        public var selectsBlocks: Bool { self == .xAttention || self == .flexPrefill }

        /// Accepts this project's names and upstream's (`stream_llm`, `vertical_and_slash`,
        /// `block_sparse`, `tri_shape`), case-insensitively.
        public init?(name: String) {
            switch name.lowercased() {
            case "dense": self = .dense
            case "a-shape", "a_shape", "ashape", "stream_llm": self = .aShape
            case "vertical-slash", "vertical_slash", "vertical_and_slash": self = .verticalSlash
            case "block-sparse", "block_sparse": self = .blockSparse
            case "tri-shape", "tri_shape", "trishape": self = .triShape
            case "xattention", "x-attention": self = .xAttention
            case "flexprefill", "flex-prefill": self = .flexPrefill
            default: return nil
            }
        }
    }

    /// The pattern's kind, without its budgets.
    public var kind: Kind {
        switch self {
        case .dense: .dense
        case .aShape: .aShape
        case .verticalSlash: .verticalSlash
        case .blockSparse: .blockSparse
        case .triShape: .triShape
        case .xAttention: .xAttention
        case .flexPrefill: .flexPrefill
        }
    }

    /// The pattern with its budgets, e.g. `vertical-slash(vertical 1000, slash 6096)`.
    public var description: String {
        switch self {
        case .dense: "dense"
        case .aShape(let sink, let window): "a-shape(sink \(sink), window \(window))"
        case .verticalSlash(let v, let s): "vertical-slash(vertical \(v), slash \(s))"
        case .blockSparse(let blocks): "block-sparse(\(blocks) blocks)"
        case .triShape(let sink, let window, let last): "tri-shape(sink \(sink), window \(window), last \(last))"
        case .xAttention(let p): "xattention(\(p))"
        case .flexPrefill(let p): "flexprefill(\(p))"
        }
    }

    /// Throws `AttentionError.budget` unless every budget is positive and representable.
    public func validate() throws {
        let limit = Int(Int32.max)
        switch self {
        case .dense: return
        case .aShape(let sink, let window):
            guard sink > 0 else { throw AttentionError.budget("a-shape sink must be > 0, got \(sink)") }
            guard window > 0 else { throw AttentionError.budget("a-shape window must be > 0, got \(window)") }
            guard sink <= limit, window <= limit else { throw AttentionError.budget("a-shape budgets above \(limit)") }
        case .verticalSlash(let v, let s):
            guard v > 0 else { throw AttentionError.budget("vertical-slash vertical budget must be > 0, got \(v)") }
            guard s > 0 else { throw AttentionError.budget("vertical-slash slash budget must be > 0, got \(s)") }
            guard v <= limit, s <= limit else { throw AttentionError.budget("vertical-slash budgets above \(limit)") }
        case .blockSparse(let blocks):
            guard blocks > 0 else { throw AttentionError.budget("block-sparse blocks must be > 0, got \(blocks)") }
            guard blocks <= limit else { throw AttentionError.budget("block-sparse budget above \(limit)") }
        case .triShape(let sink, let window, let last):
            guard sink > 0 else { throw AttentionError.budget("tri-shape sink must be > 0, got \(sink)") }
            guard window > 0 else { throw AttentionError.budget("tri-shape window must be > 0, got \(window)") }
            guard last >= 0 else { throw AttentionError.budget("tri-shape last must be >= 0, got \(last)") }
            guard sink <= limit, window <= limit, last <= limit else { throw AttentionError.budget("tri-shape budgets above \(limit)") }
        case .xAttention(let p): try p.validate()
        case .flexPrefill(let p): try p.validate()
        }
    }
}
