extension PatternReference {
    /// Keys query `query` attends under A-shape (upstream `stream_llm`, section 3): the sliding
    /// window `0 <= query - j < window` (the window counts the query itself) plus the sink keys
    /// `j < sink` before it. Upstream's two passes use element-exact masks, so the set is exactly
    /// `{ j <= query : query - j < window or j < sink }`, ascending, each key once.
    package static func coveredKeys(aShapeSink sink: Int, window: Int, query: Int) -> [Int] {
        precondition(query >= 0, "query must be >= 0, got \(query)")
        let windowStart = max(0, query - max(window, 0) + 1)  // query + 1 (empty) when window <= 0
        let sinkEnd = max(0, min(sink, windowStart))  // sinks inside the window are counted there
        return Array(0..<sinkEnd) + Array(windowStart..<(query + 1))
    }
}
