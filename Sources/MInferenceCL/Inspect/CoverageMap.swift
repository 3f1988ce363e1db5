extension HeadCoverage {
    /// The share of each picture cell's causal pairs that the head's kernel covers, on the
    /// cell grid of `AttentionRecall.attentionMaps` (row-major, `cells` x `cells`, clamped to
    /// N); -1 where a cell has no causal pair.
    public func coverageMap(length n: Int, cells: Int) -> [Float] {
        let cells = max(1, min(cells, n))
        let bounds = (0...cells).map { $0 * n / cells }
        var cellOf = [Int](repeating: 0, count: n)
        for c in 0..<cells { for j in bounds[c]..<bounds[c + 1] { cellOf[j] = c } }
        var covered = [Int](repeating: 0, count: cells * cells)
        var causal = [Int](repeating: 0, count: cells * cells)
        // Adds the keys of `range`, `rows` times, to picture row `row`.
        func add(_ range: Range<Int>, row: Int, rows: Int = 1, into counts: inout [Int]) {
            var lo = range.lowerBound
            guard lo < range.upperBound else { return }
            var c = cellOf[lo]
            while lo < range.upperBound {
                let hi = min(range.upperBound, bounds[c + 1])
                counts[row * cells + c] += (hi - lo) * rows
                lo = hi
                c += 1
            }
        }
        for i in 0..<n { add(0..<(i + 1), row: cellOf[i], into: &causal) }
        switch self {
        case .dense, .aShape, .triShape:
            for i in 0..<n {
                for range in ranges(query: i, length: n) { add(range, row: cellOf[i], into: &covered) }
            }
        case .verticalSlash, .blockSparse:
            // The rows of a row block read the same ranges: count a range once per run of rows
            // in one picture row when all of them see all of it, per row only near the diagonal.
            let size = rowBlockSize
            for m in 0..<((n + size - 1) / size) {
                let blockRows = (m * size)..<min(m * size + size, n)
                let ranges = rowBlockRanges(m, length: n)
                var a = blockRows.lowerBound
                while a < blockRows.upperBound {
                    let r = cellOf[a], b = min(blockRows.upperBound, bounds[r + 1])
                    for range in ranges {
                        if range.upperBound <= a + 1 {
                            add(range, row: r, rows: b - a, into: &covered)
                        } else {
                            for i in a..<b where range.lowerBound <= i { add(range.lowerBound..<min(range.upperBound, i + 1), row: r, into: &covered) }
                        }
                    }
                    a = b
                }
            }
        }
        return zip(covered, causal).map { $1 == 0 ? -1 : Float($0) / Float($1) }
    }
}
