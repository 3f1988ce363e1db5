/// The pattern of every query head of a layer: the unit the engine dispatches. Heads that
/// share a pattern kind run in one launch per step, each with its own budgets.
public struct LayerPlan: Sendable, Hashable, CustomStringConvertible {
    /// One pattern per query head, in head order (`heads.count` must equal `Hq`).
    public var heads: [HeadPattern]

    /// A plan of one pattern per query head.
    public init(heads: [HeadPattern]) { self.heads = heads }

    /// Every one of `heads` query heads with `pattern`.
    public static func uniform(_ pattern: HeadPattern, heads: Int) -> LayerPlan {
        LayerPlan(heads: Array(repeating: pattern, count: heads))
    }

    /// Checks the plan against the problem: one pattern per query head, valid budgets, and the
    /// shapes the sparse patterns are defined for: causal, with Nq = Nk (prefill) or Nq < Nk (a
    /// chunk of a prefill: query i at position Nk - Nq + i). Throws `AttentionError`.
    ///
    /// In a chunk each pattern gives the rows that it gives those positions in a prefill of the
    /// whole Nk-token prompt, where that is defined: A-shape always; vertical-slash when Nq >= 64
    /// (its estimate reads the last 64 queries, which are the chunk's; row blocks stay aligned to
    /// absolute positions); block-sparse when Nk - Nq is a multiple of 64 (the pooled query blocks
    /// are then the prompt's). Otherwise the estimate reads the chunk's own queries: vertical-slash
    /// with Nq < 64 scores from those Nq queries, and block-sparse pools the first query block over
    /// the chunk's rows in it. A decode step (Nq = 1) runs dense for every pattern.
    ///
    /// Upstream's later methods (docs/PREFILL-METHODS.md section 11): Tri-shape makes the last
    /// `last` positions of the keys dense; XAttention and FlexPrefill need a chunk that starts on a
    /// multiple of their block size (XAttention then gives the prompt's rows; FlexPrefill estimates
    /// from the chunk's own last queries). The heads of one method share one parameter set
    /// (Tri-shape: one `last`), as they run in one launch; otherwise `AttentionError.unsupported`.
    public func validate(for problem: AttentionProblem) throws {
        guard heads.count == problem.headsQ else {
            throw AttentionError.shape("the layer plan has \(heads.count) head patterns; q has \(problem.headsQ) query heads")
        }
        for (h, pattern) in heads.enumerated() {
            do { try pattern.validate() } catch let AttentionError.budget(message) {
                throw AttentionError.budget("head \(h): \(message)")
            }
            if pattern.kind != .dense {
                guard problem.causal else {
                    throw AttentionError.unsupported("head \(h): \(pattern.kind.rawValue) is defined for causal attention only")
                }
                guard problem.queryLength <= problem.keyLength else {
                    throw AttentionError.unsupported("head \(h): \(pattern.kind.rawValue) needs Nq <= Nk (a prefill or a chunk of one, queries at the end); got Nq \(problem.queryLength), Nk \(problem.keyLength)")
                }
            }
            let shift = problem.keyLength - problem.queryLength
            if let block = pattern.blockSize, shift % block != 0, problem.queryLength > 1 {
                throw AttentionError.unsupported("head \(h): \(pattern.kind.rawValue) in a chunk needs the chunk to start on a block boundary (Nk - Nq = \(shift) is not a multiple of its block size \(block))")
            }
        }
        // One launch per kind runs one parameter set (Tri-shape: one dense tail length).
        for kind in [HeadPattern.Kind.triShape, .xAttention, .flexPrefill] {
            let settings = Set(heads.compactMap { $0.kind == kind ? $0.launchSetting : nil })
            guard settings.count <= 1 else {
                throw AttentionError.unsupported("the \(kind.rawValue) heads of a layer must share \(kind == .triShape ? "one last" : "one parameter set"); got \(settings.count) different ones")
            }
        }
    }

    /// How many heads run each pattern, e.g. `2x a-shape(sink 128, window 3968), 30x dense`.
    public var description: String {
        var counts: [String: Int] = [:]
        for p in heads { counts[p.description, default: 0] += 1 }
        return counts.keys.sorted().map { "\(counts[$0]!)x \($0)" }.joined(separator: ", ")
    }
}

/// How the engine runs a layer plan.
public struct SparseOptions: Sendable, Hashable {
    /// When a sparse head runs densely instead.
    public enum DenseFallback: String, Sendable, Hashable, CaseIterable {
        /// Below the device's measured length where dense is faster (`DeviceProfile`).
        case automatic = "auto"
        /// Always run the requested pattern.
        case never
    }

    /// When a sparse head runs densely instead; default ``DenseFallback/automatic``.
    public var denseFallback: DenseFallback
    /// Keep the index arrays each head used (for `--indices-out` and tests).
    public var collectIndices: Bool
    /// How the vertical-slash estimate computes its logits; nil: the device profile's choice.
    public var estimation: DeviceProfile.EstimationBackend?
    /// The caller guarantees that q, k and v hold no NaN or infinity (it checked them, or its
    /// model cannot produce one): the device-tensor calls then skip the non-finite scan (about
    /// one read of q, k and v; 0.12-0.47 ms per layer at 32K-128K tokens on an H200) and run only
    /// the flag-free variant of each kernel. With a non-finite input anyway, the rows that read
    /// it, and others of their tile, are undefined. Default false: a row that reads a NaN or an
    /// infinity is NaN and every other row is exact (docs/NON-FINITE.md). The host-tensor calls
    /// set it themselves when `checkFinite` has checked the inputs.
    public var assumeFinite: Bool

    /// Options with the given values; the defaults are the library's: automatic dense fallback,
    /// no indices kept, the device profile's estimation backend, inputs scanned for NaN and
    /// infinities.
    public init(denseFallback: DenseFallback = .automatic, collectIndices: Bool = false,
                estimation: DeviceProfile.EstimationBackend? = nil, assumeFinite: Bool = false) {
        self.denseFallback = denseFallback
        self.collectIndices = collectIndices
        self.estimation = estimation
        self.assumeFinite = assumeFinite
    }
}

extension HeadPattern {
    /// The block size of XAttention and FlexPrefill heads (nil for the other patterns).
    var blockSize: Int? {
        switch self {
        case .xAttention(let x): x.blockSize
        case .flexPrefill(let f): f.blockSize
        default: nil
        }
    }

    /// What the heads of one launch must share: Tri-shape's `last`, XAttention's and FlexPrefill's
    /// whole parameter set.
    var launchSetting: String? {
        switch self {
        case .triShape(_, _, let last): "\(last)"
        case .xAttention, .flexPrefill: description
        default: nil
        }
    }
}
