/// The attention pattern of one head with its budgets (MInference's three sparse shapes, or dense).
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

    /// Upstream's budgets for a head missing from a config, and for a run without one.
    public static let defaultVerticalSlash = HeadPattern.verticalSlash(vertical: 1000, slash: 6096)
    /// Upstream's whole-model A-shape defaults (`n_init = 128`, `n_local = 3968`).
    public static let defaultAShape = HeadPattern.aShape(sink: 128, window: 3968)
    /// Upstream's block-sparse budget (`top_k = 100`).
    public static let defaultBlockSparse = HeadPattern.blockSparse(blocks: 100)

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

        /// MInference's name for the pattern in its JSON configs (dense has none).
        public var upstreamName: String? {
            switch self {
            case .dense: nil
            case .aShape: "stream_llm"
            case .verticalSlash: "vertical_and_slash"
            case .blockSparse: "block_sparse"
            }
        }

        /// Accepts this project's names and upstream's (`stream_llm`, `vertical_and_slash`,
        /// `block_sparse`), case-insensitively.
        public init?(name: String) {
            switch name.lowercased() {
            case "dense": self = .dense
            case "a-shape", "a_shape", "ashape", "stream_llm": self = .aShape
            case "vertical-slash", "vertical_slash", "vertical_and_slash": self = .verticalSlash
            case "block-sparse", "block_sparse": self = .blockSparse
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
        }
    }

    /// The pattern with its budgets, e.g. `vertical-slash(vertical 1000, slash 6096)`.
    public var description: String {
        switch self {
        case .dense: "dense"
        case .aShape(let sink, let window): "a-shape(sink \(sink), window \(window))"
        case .verticalSlash(let v, let s): "vertical-slash(vertical \(v), slash \(s))"
        case .blockSparse(let blocks): "block-sparse(\(blocks) blocks)"
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
        }
    }
}
