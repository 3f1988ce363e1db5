import RealModule

/// A small, fast, seedable generator (SplitMix64) so tests and benchmarks are reproducible.
package struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    package init(seed: UInt64) { state = seed }

    package mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A standard normal sample (Box-Muller).
    package mutating func normal() -> Float {
        let u1 = Double(next() >> 11 + 1) / Double(1 << 53)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2))
    }

    /// `count` standard normal samples times `scale`.
    package mutating func normals(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in normal() * scale }
    }
}

extension AttentionProblem {
    /// Host q, k and v of this problem with N(0, 1) entries, drawn from one `seed` stream in
    /// that order.
    package func normalInputs(seed: UInt64) -> (q: Tensor, k: Tensor, v: Tensor) {
        var random = SeededRandom(seed: seed)
        let q = Tensor(uncheckedShape: queryShape, dtype: inputDType, values: random.normals(queryShape.reduce(1, *)))
        let k = Tensor(uncheckedShape: keyShape, dtype: inputDType, values: random.normals(keyShape.reduce(1, *)))
        let v = Tensor(uncheckedShape: keyShape, dtype: inputDType, values: random.normals(keyShape.reduce(1, *)))
        return (q, k, v)
    }
}
