extension PatternReference {
    /// Keys query `query` attends under Tri-shape (docs/PREFILL-METHODS.md, section 2): A-shape
    /// (`sink` first keys plus a window of `window` keys, the query itself included; see
    /// `coveredKeys(aShapeSink:window:query:)`) for the first `N - L` queries, and every causal key
    /// for the last `L = min(last, N)` queries. Ascending, each key once.
    ///
    /// This is the covered set of upstream's `tri_shape_kernel` (`n_init = sink`,
    /// `n_local = window`, `n_last = last`) with one deliberate difference in the clamp: upstream
    /// takes `L = min(n_last, N - 1)` and then fails for `L = 0` (an empty `[:-0]` slice, so
    /// `N = 1` or `n_last = 0` raise a shape error, section 2 "Surprises"). This library clamps to
    /// `min(last, N)` instead: `last >= N` makes every row dense (also for `N = 1`), and
    /// `last = 0` is plain A-shape. For `1 <= last <= N - 1` the two agree; for `last >= N`,
    /// upstream's `L = N - 1` keeps query 0 in the A-shape part, where it sees key 0 as soon as
    /// `sink` or `window` is positive, so the covered sets are the same there too.
    package static func triShapeKeys(query: Int, length: Int, sink: Int, window: Int, last: Int) -> [Int] {
        precondition(length >= 1, "length must be >= 1, got \(length)")
        precondition((0..<length).contains(query), "query \(query) outside 0..<\(length)")
        precondition(last >= 0, "last (dense last queries) must be >= 0, got \(last)")
        let denseRows = min(last, length)
        if query >= length - denseRows { return Array(0...query) }
        return coveredKeys(aShapeSink: sink, window: window, query: query)
    }
}
