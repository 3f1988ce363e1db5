/// The per-head kernel cost the search spends, as a FLOPs budget in tiles (`KernelCost`) at a
/// layer's length. Every candidate of a head is held to at most this cost, so candidates are
/// compared at (nearly) equal kernel FLOPs.
public enum SearchTarget: Sendable, Hashable, CustomStringConvertible {
    /// The share `d` of the dense causal kernel's tiles (`--density 0.1`). Covered-pair
    /// densities come out close to it and a little lower: a visited tile on the diagonal, or one
    /// the A-shape mask trims, is paid for in full.
    case density(Double)
    /// The cost of an A-shape head with these budgets at the layer's length (`--budget 1k+4k`:
    /// 1024 sink keys and a 4096-key window).
    case aShape(sink: Int, window: Int)

    /// Parses `SINK+WINDOW`, each a whole number with an optional `k` (times 1024): `1k+4k`,
    /// `128+3968`. Throws ``AttentionError/budget(_:)`` for anything else, and for budgets outside
    /// 1...2^31 - 1.
    public init(budget spec: String) throws {
        let parts = spec.split(separator: "+", omittingEmptySubsequences: false)
        func number(_ text: Substring) -> Int? {
            let lower = text.lowercased()
            let (digits, factor) = lower.hasSuffix("k") ? (String(lower.dropLast()), 1024) : (lower, 1)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits), value > 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: factor)
            return overflow || product > Int(Int32.max) ? nil : product
        }
        guard parts.count == 2, let sink = number(parts[0]), let window = number(parts[1]) else {
            throw AttentionError.budget("budget '\(spec)' is not SINK+WINDOW (whole numbers > 0, optionally with k = 1024), e.g. 1k+4k")
        }
        self = .aShape(sink: sink, window: window)
    }

    /// Throws ``AttentionError/budget(_:)`` unless a density is in (0, 1] or the A-shape budgets
    /// are positive.
    public func validate() throws {
        switch self {
        case .density(let d):
            guard d.isFinite, d > 0, d <= 1 else { throw AttentionError.budget("density must be in (0, 1], got \(d)") }
        case .aShape(let sink, let window):
            try HeadPattern.aShape(sink: sink, window: window).validate()
        }
    }

    /// The budget at length `n`: at least one tile per row block (every query must see a key).
    public func cost(length n: Int) -> KernelCost {
        let tiles: Int = switch self {
        case .density(let d): Int((d * Double(KernelCost.dense(length: n).tiles)).rounded(.down))
        case .aShape(let sink, let window): KernelCost.aShape(length: n, sink: sink, window: window).tiles
        }
        return KernelCost(tiles: max(tiles, KernelCost.rowBlocks(length: n)), length: n)
    }

    /// The target in words, e.g. `density 0.3 of the dense causal kernel's FLOPs`.
    public var description: String {
        switch self {
        case .density(let d): "density \(d) of the dense causal kernel's FLOPs"
        case .aShape(let sink, let window): "the FLOPs of a-shape(sink \(sink), window \(window))"
        }
    }
}
