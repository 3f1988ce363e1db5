/// How far an output is from a reference: ‖out − ref‖ / ‖ref‖, the largest absolute difference,
/// and how many outputs were not finite (an unwritten, poisoned element shows up here).
package struct ErrorMetrics: Sendable, CustomStringConvertible {
    package var relativeL2: Double
    package var maxAbs: Double
    package var nonFinite: Int
    package var count: Int

    package init() {
        relativeL2 = 0
        maxAbs = 0
        nonFinite = 0
        count = 0
    }

    private var diffSquares = 0.0
    private var refSquares = 0.0

    /// Adds a pair of equally long rows.
    package mutating func add<A: Collection<Float>>(output: A, reference: [Double]) where A.Index == Int {
        precondition(output.count == reference.count)
        for (o, r) in zip(output, reference) {
            count += 1
            if !o.isFinite { nonFinite += 1; continue }
            let d = Double(o) - r
            diffSquares += d * d
            refSquares += r * r
            maxAbs = max(maxAbs, abs(d))
        }
        relativeL2 = refSquares > 0 ? (diffSquares / refSquares).squareRoot() : diffSquares.squareRoot()
    }

    package var description: String {
        "rel_l2=\(Format.scientific(relativeL2)) max_abs=\(Format.scientific(maxAbs))" + (nonFinite > 0 ? " non_finite=\(nonFinite)/\(count)" : "")
    }
}
