import RealModule

/// Attention in float64 on the CPU, row by row, for checking the kernels. A row is computed over
/// the dense causal (or full) key set, or over an explicit list of keys (a sparse pattern's
/// covered set), so the same code checks every pattern.
///
/// Non-finite inputs follow docs/NON-FINITE.md section 1, the rule plain softmax attention gives a
/// row that reads one: a row whose q row, or the k or v row of a key it covers, holds a NaN or an
/// infinity is NaN in every channel; a key it does not cover changes nothing.
package struct ReferenceAttention: Sendable {
    package let problem: AttentionProblem
    let q: [Double]
    let k: [Double]
    let v: [Double]
    /// Per flattened KV head and key: whether its k or v row holds a NaN or an infinity.
    let nonFiniteKeys: [Bool]

    package init(problem: AttentionProblem, q: Tensor, k: Tensor, v: Tensor) {
        self.problem = problem
        self.q = q.floats().map(Double.init)
        self.k = k.floats().map(Double.init)
        self.v = v.floats().map(Double.init)
        let d = problem.headDim
        nonFiniteKeys = (0..<(problem.batch * problem.headsKV * problem.keyLength)).map { [k = self.k, v = self.v] row in
            !(k[row * d..<(row + 1) * d].allSatisfy(\.isFinite) && v[row * d..<(row + 1) * d].allSatisfy(\.isFinite))
        }
    }

    /// Whether query row `query` of flattened head `head` holds a NaN or an infinity.
    package func queryIsNonFinite(head: Int, query: Int) -> Bool {
        let base = (head * problem.queryLength + query) * problem.headDim
        return !q[base..<base + problem.headDim].allSatisfy(\.isFinite)
    }

    /// Whether key `key` of the KV head that flattened query head `head` reads holds a NaN or an
    /// infinity in its k or v row.
    package func keyIsNonFinite(head: Int, key: Int) -> Bool {
        nonFiniteKeys[kvHead(of: head) * problem.keyLength + key]
    }

    /// Flattened KV head (batch * Hkv + kv) read by flattened query head (batch * Hq + h).
    package func kvHead(of head: Int) -> Int {
        problem.kvHead(ofFlattened: head)
    }

    /// Keys query `query` sees without a sparse pattern: 0...(Nk - Nq + query) when causal.
    package func denseKeys(query: Int) -> Range<Int> {
        guard problem.causal else { return 0..<problem.keyLength }
        let last = problem.keyLength - problem.queryLength + query
        return 0..<max(0, min(problem.keyLength, last + 1))
    }

    /// Scaled logits q.k * scale of one query row against `keys`.
    package func logits<C: Collection<Int>>(head: Int, query: Int, keys: C) -> [Double] {
        let d = problem.headDim
        let qBase = (head * problem.queryLength + query) * d
        let kBase = kvHead(of: head) * problem.keyLength * d
        let scale = Double(problem.scale)
        return keys.map { j in
            var dot = 0.0
            let kj = kBase + j * d
            for c in 0..<d { dot += q[qBase + c] * k[kj + c] }
            return dot * scale
        }
    }

    /// The softmax-weighted value row over `keys` (nil: the dense key set). A row with no key is 0;
    /// a row with a non-finite q row, or covering a key with a non-finite k or v row, is NaN.
    package func output(head: Int, query: Int, keys: [Int]? = nil) -> [Double] {
        let d = problem.headDim
        let keyList = keys ?? Array(denseKeys(query: query))
        if queryIsNonFinite(head: head, query: query) || keyList.contains(where: { keyIsNonFinite(head: head, key: $0) }) {
            return [Double](repeating: .nan, count: d)
        }
        var out = [Double](repeating: 0, count: d)
        guard !keyList.isEmpty else { return out }
        let s = logits(head: head, query: query, keys: keyList)
        let m = s.max()!
        var sum = 0.0
        let vBase = kvHead(of: head) * problem.keyLength * d
        for (n, j) in keyList.enumerated() {
            let p = Double.exp(s[n] - m)
            sum += p
            let vj = vBase + j * d
            for c in 0..<d { out[c] += p * v[vj + c] }
        }
        for c in 0..<d { out[c] /= sum }
        return out
    }

    /// Dense softmax mass that falls on `keys` for one query (the recall of a covered set).
    package func recall(head: Int, query: Int, keys: [Int]) -> Double {
        let dense = Array(denseKeys(query: query))
        guard !dense.isEmpty else { return 1 }
        let s = logits(head: head, query: query, keys: dense)
        let m = s.max()!
        let p = s.map { Double.exp($0 - m) }
        let total = p.reduce(0, +)
        let covered = Set(keys)
        var inside = 0.0
        for (n, j) in dense.enumerated() where covered.contains(j) { inside += p[n] }
        return inside / total
    }
}

