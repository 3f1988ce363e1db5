/// How far an output is from a reference: ‖out − ref‖ / ‖ref‖, the largest absolute difference,
/// and how many outputs were not finite (an unwritten, poisoned element shows up here).
public struct ErrorMetrics: Sendable, CustomStringConvertible {
    public var relativeL2: Double
    public var maxAbs: Double
    public var nonFinite: Int
    public var count: Int

    public init() {
        relativeL2 = 0
        maxAbs = 0
        nonFinite = 0
        count = 0
    }

    private var diffSquares = 0.0
    private var refSquares = 0.0

    /// Adds a pair of equally long rows.
    public mutating func add<A: Collection<Float>>(output: A, reference: [Double]) where A.Index == Int {
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

    public var description: String {
        "rel_l2=\(Format.scientific(relativeL2)) max_abs=\(Format.scientific(maxAbs))" + (nonFinite > 0 ? " non_finite=\(nonFinite)/\(count)" : "")
    }
}
