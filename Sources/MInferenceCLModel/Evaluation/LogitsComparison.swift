import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Two forward passes' logits compared position by position: a reference (dense attention, or a
/// CPU forward pass) and a candidate (the config's sparse attention, or the device). Every
/// measure is computed in Double from the Float logits.
///
/// Per position (rows of `vocab` logits each): whether the argmax agrees (ties go to the lowest
/// token id), KL(reference ‖ candidate) of the two softmaxes in nats, the relative L2 distance
/// ‖candidate − reference‖ / ‖reference‖, and, when the next token is known, its negative
/// log-likelihood under both (perplexity).
public struct LogitsComparison: Sendable, Equatable {
    /// Positions compared.
    public private(set) var positions = 0
    /// Positions where both argmaxes are the same token.
    public private(set) var agreeing = 0
    /// Sum over positions of KL(reference ‖ candidate), nats.
    public private(set) var klSum = 0.0
    /// The largest per-position relative L2 distance.
    public private(set) var maxRelativeL2 = 0.0
    /// Sums over positions of ‖candidate − reference‖² and ‖reference‖² (the overall relative L2).
    public private(set) var squaredDifference = 0.0, squaredReference = 0.0
    /// Positions whose next token was given, and its negative log-likelihood summed under each.
    public private(set) var predicted = 0
    public private(set) var referenceNLL = 0.0, candidateNLL = 0.0

    public init() {}

    /// Share of positions with the same argmax, 0...1 (1 when nothing was compared).
    public var top1Agreement: Double { positions == 0 ? 1 : Double(agreeing) / Double(positions) }
    /// Mean KL(reference ‖ candidate) per position, nats.
    public var meanKL: Double { klSum / Double(max(positions, 1)) }
    /// ‖candidate − reference‖ / ‖reference‖ over every compared logit at once.
    public var relativeL2: Double { squaredReference > 0 ? (squaredDifference / squaredReference).squareRoot() : 0 }
    /// exp(mean negative log-likelihood of the next tokens) under the reference and the candidate.
    public var perplexity: (reference: Double, candidate: Double) {
        let n = Double(max(predicted, 1))
        return (exp(referenceNLL / n), exp(candidateNLL / n))
    }

    /// Adds one position: `reference` and `candidate` are its logits (the same count); `next`, the
    /// token that follows it in the text, when there is one.
    /// - Precondition: the rows have the same, non-zero length and `next` indexes them.
    public mutating func add(reference: [Float], candidate: [Float], next: Int32? = nil) {
        add(Position(reference: reference, candidate: candidate, next: next))
    }

    /// Adds the rows of `reference` and `candidate` pairwise (`next[i]` follows row i, if given),
    /// measured in parallel on the host's cores and added in order (the sums do not depend on the
    /// core count).
    /// - Precondition: as `add(reference:candidate:next:)`, row by row; as many rows on both sides.
    public mutating func add(reference: [[Float]], candidate: [[Float]], next: [Int32?] = []) {
        precondition(reference.count == candidate.count, "\(reference.count) and \(candidate.count) positions")
        let measured = Mutex([Position?](repeating: nil, count: reference.count))
        DispatchQueue.concurrentPerform(iterations: reference.count) { i in
            let position = Position(reference: reference[i], candidate: candidate[i], next: i < next.count ? next[i] : nil)
            measured.withLock { $0[i] = position }
        }
        for position in measured.withLock({ $0 }) { add(position!) }
    }

    /// One position's measures.
    struct Position: Sendable {
        var agrees: Bool, kl: Double, squaredDifference: Double, squaredReference: Double
        var nll: (reference: Double, candidate: Double)?

        init(reference: [Float], candidate: [Float], next: Int32?) {
            precondition(!reference.isEmpty && reference.count == candidate.count, "logit rows of \(reference.count) and \(candidate.count)")
            let lr = LogitsComparison.logSoftmax(reference), lc = LogitsComparison.logSoftmax(candidate)
            agrees = LogitsComparison.argmax(reference) == LogitsComparison.argmax(candidate)
            var kl = 0.0, difference = 0.0, norm = 0.0
            for i in reference.indices {
                kl += exp(lr[i]) * (lr[i] - lc[i])
                let r = Double(reference[i]), d = Double(candidate[i]) - r
                difference += d * d
                norm += r * r
            }
            (self.kl, squaredDifference, squaredReference) = (kl, difference, norm)
            nll = next.map { (-lr[Int($0)], -lc[Int($0)]) }
        }
    }

    private mutating func add(_ p: Position) {
        positions += 1
        if p.agrees { agreeing += 1 }
        klSum += p.kl
        squaredDifference += p.squaredDifference
        squaredReference += p.squaredReference
        if p.squaredReference > 0 { maxRelativeL2 = max(maxRelativeL2, (p.squaredDifference / p.squaredReference).squareRoot()) }
        if let nll = p.nll {
            referenceNLL += nll.reference
            candidateNLL += nll.candidate
            predicted += 1
        }
    }

    /// The index of the largest logit, the lowest on ties (greedy decoding's choice).
    public static func argmax(_ row: [Float]) -> Int {
        var best = 0
        for i in row.indices where row[i] > row[best] { best = i }
        return best
    }

    /// log softmax(row) in Double: row − max − log Σ exp(row − max).
    static func logSoftmax(_ row: [Float]) -> [Double] {
        let top = Double(row[argmax(row)])
        let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - top) }) + top
        return row.map { Double($0) - logSum }
    }
}

/// What a device forward pass must meet against a reference forward pass: the accuracy
/// proof (logits of the last 64 positions of a 1,500-token English text within 1e-2 relative L2
/// of a float32 reference forward, top-1 identical on at least 98 % of them).
public struct LogitsRequirement: Sendable, Equatable, CustomStringConvertible {
    /// The largest per-position relative L2 distance allowed.
    public var maxRelativeL2: Double
    /// The smallest share of positions with the same argmax, 0...1.
    public var minTop1Agreement: Double

    public init(maxRelativeL2: Double, minTop1Agreement: Double) {
        self.maxRelativeL2 = maxRelativeL2
        self.minTop1Agreement = minTop1Agreement
    }

    /// 1e-2 relative L2 at every position, top-1 on >= 98 % of the positions.
    public static let deviceAgainstReference = LogitsRequirement(maxRelativeL2: 1e-2, minTop1Agreement: 0.98)

    /// Whether `comparison` meets it (nothing compared never meets it).
    public func isMet(by comparison: LogitsComparison) -> Bool {
        comparison.positions > 0 && comparison.maxRelativeL2 <= maxRelativeL2 && comparison.top1Agreement >= minTop1Agreement
    }

    public var description: String { "relative L2 <= \(maxRelativeL2) at every position, top-1 agreement >= \(minTop1Agreement * 100) %" }
}
