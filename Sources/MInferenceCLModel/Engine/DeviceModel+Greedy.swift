import MInferenceCL

extension DeviceModel {
    /// Greedy decoding with the KV cache, after a prefill: the first token is the argmax of
    /// `logits` (the last prefilled position's, `[vocab]`), and each further one the argmax of the
    /// logits of the token before it, prefilled as a one-token chunk at the next position (a
    /// decode step: Nq = 1, attention dense on every head whatever `plan` says). Ties go to the
    /// lowest token id.
    ///
    /// Returns up to `count` tokens, ending early with `stop` (included) when it is generated. The
    /// last token is not prefilled, so the cache grows by `count − 1` positions at most.
    /// - Throws: `AttentionError.invalidArgument` when the cache cannot hold them, and the errors
    ///   of `prefill`.
    public func greedyDecode(after logits: [Float], count: Int, stop: Int32? = nil, options: SparseOptions = SparseOptions(),
                             plan: (Int) -> LayerPlan? = { _ in nil }) throws -> [Int32] {
        guard count > 0, !logits.isEmpty else { return [] }
        var next = Int32(LogitsComparison.argmax(logits))
        var generated: [Int32] = []
        while true {
            generated.append(next)
            if next == stop || generated.count == count { return generated }
            next = Int32(LogitsComparison.argmax(try prefill(tokens: [next], options: options, plan: plan)[0]))
        }
    }
}
