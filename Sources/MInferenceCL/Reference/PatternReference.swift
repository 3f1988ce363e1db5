/// An independent float64 CPU re-implementation of how MInference picks the keys of each sparse
/// pattern (docs/MINFERENCE.md, sections 3-7): the vertical-slash estimate and index
/// conversion, block-sparse block selection, and the key set each query ends up attending.
///
/// It exists so tests can check the GPU implementation against upstream's rules, not against
/// itself: every function follows upstream's code step for step (including its quirks, such as
/// the 64-key windows and the "grow by a whole block" merge), is written for clarity rather than
/// speed, and computes in float64. Ties that upstream leaves to `torch.topk` are broken by the
/// smaller index (the project's rule, see `topK`).
///
/// Functions taking a `ReferenceAttention` expect a causal prefill problem (queries = keys), as
/// upstream's sparse paths do.
package enum PatternReference {
    /// Rows per query block and keys per key block in every upstream index and kernel (64 x 64).
    package static let blockSize = 64
    /// Queries the vertical-slash estimate reads: the last `min(64, N)` (upstream's `last_q`).
    package static let estimationQueries = 64
    /// Key columns `0..<30` always win the vertical top-k (their score is set to +inf).
    package static let forcedVerticals = 30
    /// Diagonal offsets `0..<100` always score +inf in the slash top-k.
    package static let forcedSlashes = 100
    /// Lower clamps of the vertical-slash budgets.
    package static let minimumVertical = 30
    package static let minimumSlash = 50

    /// Upstream's clamps: V = min(N, max(v, 30)), S = min(N, max(s, 50)). The lower clamp keeps
    /// the forced entries selectable; the upper one keeps top-k within the N candidates.
    package static func clampedBudgets(vertical: Int, slash: Int, length: Int) -> (vertical: Int, slash: Int) {
        (min(length, max(vertical, minimumVertical)), min(length, max(slash, minimumSlash)))
    }

    /// Deterministic top-k: the indices of the `k` largest scores, ties broken by the smaller
    /// index. +inf ranks above everything, then NaN (whatever its sign), then the finite scores and
    /// -inf (topk.cl's order): a NaN estimate is never dropped silently, and the forced +inf
    /// entries always stay selected. `k` is clamped to `0...count`. Returns the indices ascending
    /// (the order upstream's kernels consume verticals in).
    package static func topK(_ scores: [Double], _ k: Int) -> [Int] {
        let count = max(0, min(k, scores.count))
        guard count > 0 else { return [] }
        let best = scores.indices.sorted { a, b in ranksAbove(scores[a], a, scores[b], b) }
        return best.prefix(count).sorted()
    }

    /// Strict "a comes before b" of `topK`: +inf, then NaN, then larger finite scores first; ties
    /// (NaN with NaN included) to the smaller index.
    package static func ranksAbove(_ x: Double, _ a: Int, _ y: Double, _ b: Int) -> Bool {
        // Classes first: +inf 2, NaN 1, the rest (finite, -inf) 0 ordered by value.
        func rankClass(_ v: Double) -> Int { v == .infinity ? 2 : v.isNaN ? 1 : 0 }
        let cx = rankClass(x), cy = rankClass(y)
        if cx != cy { return cx > cy }
        return cx == 0 && x != y ? x > y : a < b
    }

    /// Checks the prefill contract shared by the estimators, naming the violated rule.
    static func requirePrefill(_ reference: ReferenceAttention, head: Int, function: String) {
        let problem = reference.problem
        precondition(problem.causal && problem.queryLength == problem.keyLength,
                     "\(function) models upstream's causal prefill (queries = keys); got \(problem)")
        precondition((0..<(problem.batch * problem.headsQ)).contains(head),
                     "\(function): head \(head) outside 0..<\(problem.batch * problem.headsQ) (flattened batch * Hq)")
    }
}

/// The keys `0...query` one query may attend, marked as ranges are added: clipping to the causal
/// range and de-duplicating in one pass, and cheap enough to run for every query of a sequence.
struct CausalKeyMask {
    private var marked: [Bool]

    init(query: Int) { marked = [Bool](repeating: false, count: query + 1) }

    /// Marks the keys of `range` that are causal (in `0...query`); the rest are ignored.
    mutating func insert(_ range: Range<Int>) {
        let clipped = range.clamped(to: 0..<marked.count)
        for key in clipped { marked[key] = true }
    }

    /// The marked keys, ascending.
    var keys: [Int] { marked.indices.filter { marked[$0] } }
}
