/// Checks a layer run against the independent float64 reference (`PatternReference`,
/// `ReferenceAttention`): each head's selected indices (up to ties within float32 noise), the
/// block-form index lists (exactly the reference conversion of the device's selection), and the
/// output over exactly the keys each head's kernel covers. Used by the tests and by
/// `minference-bench check` on real devices.
package struct LayerVerification: Sendable {
    /// Output error over the sampled rows.
    package var metrics: ErrorMetrics
    /// Every disagreement found, one line each; empty when the run is right.
    package var problems: [String]
    package var passed: Bool { problems.isEmpty }

    /// `report` must come from a run with `SparseOptions.collectIndices` on.
    package init(reference: ReferenceAttention, plan: LayerPlan, output: Tensor, report: LayerResult,
                rows: [(head: Int, query: Int)]) {
        let problem = reference.problem
        let n = problem.queryLength
        var problems: [String] = []
        for index in report.indices.verticalSlash {
            guard case .verticalSlash(let v, let s) = report.executed[index.head % problem.headsQ] else {
                problems.append("head \(index.head): vertical-slash indices for a head that ran \(report.executed[index.head % problem.headsQ])")
                continue
            }
            let expected = PatternReference.verticalSlashEstimate(reference: reference, head: index.head, vertical: v, slash: s)
            let verticals = index.verticals.map(Int.init), offsets = index.slashOffsets.map(Int.init)
            if !Self.agreeUpToTies(verticals, expected.verticals, scores: expected.columnScores) {
                problems.append("head \(index.head): verticals differ beyond ties: \(Self.difference(verticals, expected.verticals))")
            }
            if !Self.agreeUpToTies(offsets, expected.slashOffsets, scores: expected.diagonalScores) {
                problems.append("head \(index.head): slash offsets differ beyond ties: \(Self.difference(offsets, expected.slashOffsets))")
            }
            if offsets != offsets.sorted(by: >) { problems.append("head \(index.head): slash offsets are not descending") }
            if verticals != verticals.sorted() { problems.append("head \(index.head): verticals are not ascending") }
            let converted = PatternReference.verticalSlashIndex(verticals: verticals, slashOffsets: offsets, length: n)
            let device = VerticalSlashIndex(blockCount: index.blockCount, blockOffset: index.blockOffset, columnCount: index.columnCount,
                                            columnIndex: index.columnIndex, rowBlocks: index.rowBlocks, nnzS: index.nnzS, nnzV: index.nnzV)
            if let difference = device.firstDifference(from: converted) {
                problems.append("head \(index.head): block index differs from the reference conversion: \(difference)")
            }
        }
        for index in report.indices.blockSparse {
            guard case .blockSparse(let blocks) = report.executed[index.head % problem.headsQ] else {
                problems.append("head \(index.head): block-sparse indices for a head that ran \(report.executed[index.head % problem.headsQ])")
                continue
            }
            let expected = PatternReference.blockSparseSelection(reference: reference, head: index.head, blocks: blocks)
            let scores = PatternReference.blockScores(reference: reference, head: index.head)
            let selected = index.selected.map { $0.map(Int.init) }
            if selected.count != expected.count {
                problems.append("head \(index.head): \(selected.count) query blocks, the reference has \(expected.count)")
            }
            for (m, (got, want)) in zip(selected, expected).enumerated()
            where !Self.agreeUpToTies(got, want, scores: Array(scores[m].prefix(m + 1))) {
                problems.append("head \(index.head) query block \(m): \(Self.difference(got, want))")
            }
        }
        for index in report.indices.xAttention {
            guard case .xAttention(let x) = report.executed[index.head % problem.headsQ] else {
                problems.append("head \(index.head): xattention indices for a head that ran \(report.executed[index.head % problem.headsQ])")
                continue
            }
            let dtype = problem.inputDType
            let expected = PatternReference.xAttentionSelection(
                reference: reference, head: index.head, threshold: x.threshold, stride: x.stride, blockSize: x.blockSize,
                chunkSize: x.chunkSize, norm: x.norm, rounding: dtype == .f32 ? nil : { Double(dtype.rounded(Float($0))) })
            Self.compareBlockLists(index, expected, method: "xattention", dtype: dtype, into: &problems)
        }
        for head in report.indices.flexPrefill {
            guard case .flexPrefill(let f) = report.executed[head.blocks.head % problem.headsQ] else {
                problems.append("head \(head.blocks.head): flexprefill indices for a head that ran \(report.executed[head.blocks.head % problem.headsQ])")
                continue
            }
            let expected = PatternReference.flexPrefillSelection(reference: reference, head: head.blocks.head, gamma: f.gamma, tau: f.tau,
                                                                 minBudget: f.minBudget, maxBudget: f.maxBudget, blockSize: f.blockSize)
            if expected.queryAware != head.queryAware {
                problems.append("head \(head.blocks.head): flexprefill chose \(head.queryAware ? "query-aware" : "vertical-slash") (distance \(head.distance)), the reference \(expected.queryAware ? "query-aware" : "vertical-slash") (distance \(expected.distance), tau \(f.tau))")
            }
            Self.compareBlockLists(head.blocks, expected.blocks, method: "flexprefill", dtype: problem.inputDType, into: &problems)
        }
        let covered = Self.coveredKeys(report: report, reference: reference)
        for head in 0..<(problem.batch * problem.headsQ) where covered[head] == nil {
            problems.append("head \(head): no indices were collected")
        }
        var metrics = ErrorMetrics()
        let values = output.floats()
        let d = problem.headDim
        for (h, i) in rows {
            let base = (h * n + i) * d
            metrics.add(output: values[base..<base + d], reference: reference.output(head: h, query: i, keys: covered[h]?(i)))
        }
        if !metrics.nonFiniteAgree || !(metrics.relativeL2 <= Tolerance.relativeL2(problem)) {
            problems.append("output: \(metrics) (tolerance \(Tolerance.relativeL2(problem)))")
        }
        self.metrics = metrics
        self.problems = problems
    }

    /// The keys each flattened query head's kernel covers, per query row, from what the run did:
    /// vertical-slash through the reference conversion of the device's selection, block-sparse from
    /// its selected blocks (both need `SparseOptions.collectIndices`), A-shape and dense from their
    /// rules. A head without its indices has no entry.
    package static func coveredKeys(report: LayerResult, reference: ReferenceAttention) -> [Int: (Int) -> [Int]] {
        let problem = reference.problem
        let n = problem.queryLength
        var covered: [Int: (Int) -> [Int]] = [:]
        for index in report.indices.verticalSlash {
            let converted = PatternReference.verticalSlashIndex(verticals: index.verticals.map(Int.init),
                                                                slashOffsets: index.slashOffsets.map(Int.init), length: n)
            covered[index.head] = { PatternReference.coveredKeys(index: converted, query: $0) }
        }
        for index in report.indices.blockSparse {
            let selected = index.selected.map { $0.map(Int.init) }
            covered[index.head] = { PatternReference.coveredKeys(blockSelection: selected, query: $0, length: n) }
        }
        let blockLists = report.indices.xAttention + report.indices.flexPrefill.map(\.blocks)
        for index in blockLists {
            let selected = index.selected.map { $0.map(Int.init) }, size = index.blockSize
            covered[index.head] = { PatternReference.coveredKeys(blockSelection: selected, blockSize: size, query: $0, length: n) }
        }
        for head in 0..<(problem.batch * problem.headsQ) where covered[head] == nil {
            switch report.executed[head % problem.headsQ] {
            case .aShape(let sink, let window): covered[head] = { PatternReference.coveredKeys(aShapeSink: sink, window: window, query: $0) }
            case .triShape(let sink, let window, let last):
                covered[head] = { i in
                    i >= n - min(last, n) ? Array(0...i) : PatternReference.coveredKeys(aShapeSink: sink, window: window, query: i)
                }
            case .dense: covered[head] = { Array(reference.denseKeys(query: $0)) }
            default: continue
            }
        }
        return covered
    }

    /// Equal sets, or sets that differ only in entries whose reference scores tie (within float32
    /// noise) with the k-th largest score. Non-finite scores (NaN, ±inf) have no noise: an entry
    /// scoring one must be in both sets or in neither.
    package static func agreeUpToTies(_ got: [Int], _ want: [Int], scores: [Double]) -> Bool {
        guard got.count == want.count else { return false }
        let a = Set(got), b = Set(want)
        if a == b { return true }
        guard a.union(b).allSatisfy({ $0 >= 0 && $0 < scores.count }) else { return false }
        let differing = a.symmetricDifference(b)
        guard differing.allSatisfy({ scores[$0].isFinite }) else { return false }
        let threshold = want.map { scores[$0] }.filter(\.isFinite).min() ?? 0
        let scale = max(1e-12, scores.filter(\.isFinite).map(abs).max() ?? 1)
        return differing.allSatisfy { abs(scores[$0] - threshold) <= 1e-5 * scale }
    }

    /// A block-list method's sets against the reference's. fp32 inputs must agree exactly; with
    /// fp16/bf16 inputs the device rounds its scores and sums in fp32 where the reference sums in
    /// float64, so a row whose running sum lands within rounding of the threshold may differ:
    /// at most 1% of the rows, by at most two blocks each.
    static func compareBlockLists(_ index: BlockSparseHeadIndices, _ expected: [[Int]], method: String, dtype: DType,
                                  into problems: inout [String]) {
        let got = index.selected.map { $0.map(Int.init) }
        guard got.count == expected.count else {
            problems.append("head \(index.head): \(method) lists \(got.count) query blocks, the reference \(expected.count)")
            return
        }
        let differing = zip(got, expected).enumerated().filter { $0.element.0 != $0.element.1 }
        let allowed = dtype == .f32 ? 0 : got.count / 100
        let large = differing.filter { Set($0.element.0).symmetricDifference($0.element.1).count > 2 }
        if differing.count > allowed || !large.isEmpty {
            for (m, (a, b)) in differing.prefix(3) {
                problems.append("head \(index.head) \(method) query block \(m): \(difference(a, b))")
            }
            problems.append("head \(index.head): \(method) differs from the reference in \(differing.count) of \(got.count) query blocks (\(large.count) by more than two blocks; allowed \(allowed) small ones for \(dtype))")
        }
    }

    static func difference(_ got: [Int], _ want: [Int]) -> String {
        let a = Set(got), b = Set(want)
        return "device-only \(Array(a.subtracting(b).sorted().prefix(8))), reference-only \(Array(b.subtracting(a).sorted().prefix(8)))"
    }
}
