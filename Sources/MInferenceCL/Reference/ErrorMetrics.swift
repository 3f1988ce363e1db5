/// How far an output is from a reference: ‖out − ref‖ / ‖ref‖ and the largest absolute difference
/// over the elements the reference has finite, how many outputs were not finite where the
/// reference is (an unwritten, poisoned element shows up here), and how many were not NaN where
/// the reference is NaN (a non-finite input that did not reach a row reading it).
package struct ErrorMetrics: Sendable, CustomStringConvertible {
    package var relativeL2: Double
    package var maxAbs: Double
    package var nonFinite: Int
    /// Elements the reference has NaN and the output does not.
    package var missingNaN: Int
    /// Elements both have NaN.
    package var matchedNaN: Int
    package var count: Int

    package init() {
        relativeL2 = 0
        maxAbs = 0
        nonFinite = 0
        missingNaN = 0
        matchedNaN = 0
        count = 0
    }

    /// No output non-finite where the reference is finite, and NaN wherever the reference is.
    package var nonFiniteAgree: Bool { nonFinite == 0 && missingNaN == 0 }

    private var diffSquares = 0.0
    private var refSquares = 0.0

    /// Adds a pair of equally long rows.
    package mutating func add<A: Collection<Float>>(output: A, reference: [Double]) where A.Index == Int {
        precondition(output.count == reference.count)
        for (o, r) in zip(output, reference) {
            count += 1
            if r.isNaN {
                if o.isNaN { matchedNaN += 1 } else { missingNaN += 1 }
                continue
            }
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
            + (missingNaN > 0 ? " missing_nan=\(missingNaN)/\(missingNaN + matchedNaN)" : "")
            + (matchedNaN > 0 && missingNaN == 0 ? " nan_rows_matched=\(matchedNaN)" : "")
    }
}
