/// Checks that a key a row does not attend leaves that row's bits alone, as plain attention over
/// the row's own key set does: runs a dense or A-shape layer twice on the same inputs, the second
/// time with one key of every KV head scaled by 8 and its value set to 300, and compares bit for
/// bit every row that never attends that key (causal rows before it; with A-shape also the rows
/// whose sink and window both miss it). A kernel that lets such a key move a row's running maximum,
/// or that shares a rescale decision across rows, fails it. Used by the tests (PoCL) and by
/// `minference-bench check` on each path a GPU has.
package enum MaskedKeyIndependence {
    /// The rows (flattened query head, query) whose output bits changed, one line each (at most
    /// `limit`); empty when none did. `pattern` is `.dense` or `.aShape`; `key` indexes the keys.
    package static func differences(engine: AttentionEngine, problem: AttentionProblem, pattern: HeadPattern, key: Int,
                                   seed: UInt64, limit: Int = 8) throws -> [String] {
        try differences(engine: engine, problem: problem, pattern: pattern, key: key, seed: seed, limit: limit,
                        attending: { attends(query: $0, key: $1, problem: problem, pattern: pattern) })
    }

    /// The check with another rule for which queries attend which key (tests make it wrong on purpose).
    static func differences(engine: AttentionEngine, problem: AttentionProblem, pattern: HeadPattern, key: Int, seed: UInt64,
                            limit: Int = 8, attending: (Int, Int) -> Bool) throws -> [String] {
        guard pattern.kind == .dense || pattern.kind == .aShape else {
            throw AttentionError.unsupported("the masked-key check runs dense and A-shape, whose key sets do not depend on the inputs")
        }
        guard (0..<problem.keyLength).contains(key) else {
            throw AttentionError.invalidArgument("key \(key) outside 0..<\(problem.keyLength)")
        }
        let (q, k, v) = problem.normalInputs(seed: seed)
        var kValues = k.floats(), vValues = v.floats()
        let d = problem.headDim
        for head in 0..<(problem.batch * problem.headsKV) {
            let row = (head * problem.keyLength + key) * d
            for c in 0..<d {
                kValues[row + c] *= 8
                vValues[row + c] = 300
            }
        }
        let plan = LayerPlan.uniform(pattern, heads: problem.headsQ)
        let options = SparseOptions(denseFallback: .never)
        let original = try engine.run(q: q, k: k, v: v, plan: plan, options: options).output
        let changed = try engine.run(q: q, k: try Tensor(shape: k.shape, dtype: k.dtype, values: kValues),
                                     v: try Tensor(shape: v.shape, dtype: v.dtype, values: vValues), plan: plan, options: options).output
        let rowBytes = d * problem.outputDType.byteCount
        var lines: [String] = []
        var differing = 0
        for head in 0..<(problem.batch * problem.headsQ) {
            for query in 0..<problem.queryLength where !attending(query, key) {
                let at = (head * problem.queryLength + query) * rowBytes
                guard original.bytes[at..<at + rowBytes] != changed.bytes[at..<at + rowBytes] else { continue }
                differing += 1
                if lines.count < limit { lines.append("head \(head) query \(query) changed, though it does not attend key \(key)") }
            }
        }
        if differing > lines.count { lines.append("\(differing) rows in all") }
        return lines
    }

    /// Whether `query` (at key position Nk - Nq + query) attends `key` under `pattern`.
    static func attends(query: Int, key: Int, problem: AttentionProblem, pattern: HeadPattern) -> Bool {
        let position = problem.keyLength - problem.queryLength + query
        guard !problem.causal || key <= position else { return false }
        if case .aShape(let sink, let window) = pattern { return key < sink || position - key < window }
        return true
    }
}
