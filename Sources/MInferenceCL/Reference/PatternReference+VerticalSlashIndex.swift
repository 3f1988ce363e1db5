/// Upstream's converted vertical-slash index of one head (section 5), laid out like
/// `convert_vertical_slash_indexes`' int32 outputs so a GPU index can be compared array for array.
///
/// Row block `m` covers queries `[64m, 64m + 64)`. Its first `blockCount[m]` entries of
/// `blockOffset[m * nnzS ..< (m + 1) * nnzS]` are key *positions* (not block numbers, and not
/// necessarily multiples of 64) of 64-key windows `[off, off + 64)`; its first `columnCount[m]`
/// entries of `columnIndex[m * nnzV ..< (m + 1) * nnzV]` are single key columns. Unused entries are 0.
package struct VerticalSlashIndex: Sendable, Equatable {
    package var blockCount: [Int32]
    package var blockOffset: [Int32]
    package var columnCount: [Int32]
    package var columnIndex: [Int32]
    /// R = ceil(N / 64).
    package var rowBlocks: Int
    /// Slash offsets given to the conversion (the row stride of `blockOffset`).
    package var nnzS: Int
    /// Verticals given to the conversion (the row stride of `columnIndex`).
    package var nnzV: Int

    /// All-zero arrays, as upstream allocates them before the conversion runs.
    package init(rowBlocks: Int, nnzS: Int, nnzV: Int) {
        self.init(blockCount: .init(repeating: 0, count: rowBlocks), blockOffset: .init(repeating: 0, count: rowBlocks * nnzS),
                  columnCount: .init(repeating: 0, count: rowBlocks), columnIndex: .init(repeating: 0, count: rowBlocks * nnzV),
                  rowBlocks: rowBlocks, nnzS: nnzS, nnzV: nnzV)
    }

    /// Wraps arrays read back from elsewhere (a GPU index); the sizes must match upstream's layout.
    package init(blockCount: [Int32], blockOffset: [Int32], columnCount: [Int32], columnIndex: [Int32],
                rowBlocks: Int, nnzS: Int, nnzV: Int) {
        precondition(blockCount.count == rowBlocks && columnCount.count == rowBlocks
                     && blockOffset.count == rowBlocks * nnzS && columnIndex.count == rowBlocks * nnzV,
                     "vertical-slash index arrays do not match R = \(rowBlocks), NNZ_S = \(nnzS), NNZ_V = \(nnzV)")
        self.blockCount = blockCount
        self.blockOffset = blockOffset
        self.columnCount = columnCount
        self.columnIndex = columnIndex
        self.rowBlocks = rowBlocks
        self.nnzS = nnzS
        self.nnzV = nnzV
    }

    /// The stored window start positions of row block `m`.
    package func blockOffsets(rowBlock m: Int) -> [Int] {
        blockOffset[(m * nnzS)..<(m * nnzS + Int(blockCount[m]))].map(Int.init)
    }

    /// The stored single columns of row block `m`.
    package func columns(rowBlock m: Int) -> [Int] {
        columnIndex[(m * nnzV)..<(m * nnzV + Int(columnCount[m]))].map(Int.init)
    }

    /// A readable description of the first row block where `other` differs (counts, stored
    /// entries, or the unused tail), or nil when the two are equal. For test failure messages.
    package func firstDifference(from other: VerticalSlashIndex) -> String? {
        guard rowBlocks == other.rowBlocks, nnzS == other.nnzS, nnzV == other.nnzV else {
            return "shapes differ: R/NNZ_S/NNZ_V \(rowBlocks)/\(nnzS)/\(nnzV) vs \(other.rowBlocks)/\(other.nnzS)/\(other.nnzV)"
        }
        for m in 0..<rowBlocks {
            let blocks = blockOffset[(m * nnzS)..<((m + 1) * nnzS)], otherBlocks = other.blockOffset[(m * nnzS)..<((m + 1) * nnzS)]
            let cols = columnIndex[(m * nnzV)..<((m + 1) * nnzV)], otherCols = other.columnIndex[(m * nnzV)..<((m + 1) * nnzV)]
            if blockCount[m] != other.blockCount[m] || !blocks.elementsEqual(otherBlocks) {
                return "row block \(m): blocks \(blockOffsets(rowBlock: m)) vs \(other.blockOffsets(rowBlock: m))"
                    + (blockCount[m] == other.blockCount[m] ? " (unused tail differs)" : "")
            }
            if columnCount[m] != other.columnCount[m] || !cols.elementsEqual(otherCols) {
                return "row block \(m): columns \(columns(rowBlock: m)) vs \(other.columns(rowBlock: m))"
                    + (columnCount[m] == other.columnCount[m] ? " (unused tail differs)" : "")
            }
        }
        return nil
    }
}

extension PatternReference {
    /// Section 5 exactly (`convert_vertical_slash_indexes_kernel` with 64 x 64 blocks), one row
    /// block at a time. Inputs as upstream's wrapper passes them: `verticals` ascending,
    /// `slashOffsets` descending (other orders run through the same loop, as upstream would).
    ///
    /// Guards upstream lacks (its kernel reads out of bounds there), chosen so the result is
    /// defined and harmless:
    /// - a row block for which no offset is `< end` (every diagonal misses it) gets no blocks and
    ///   no columns. (An unmerged upstream branch, `index-boundary-check`, instead emits the
    ///   window `[end, end + 64)`, which covers nothing causal, and stores every vertical `< end`
    ///   as a column, even those inside the row block that the kernel reads without a causal
    ///   test. The estimator of section 4 never gets here: it always selects offset 0.)
    /// - an empty vertical list starts at the sentinel `end + 64`, as if it had run out.
    /// Offsets must be >= 0 (a diagonal offset is `i - j`); upstream would loop forever otherwise.
    package static func verticalSlashIndex(verticals: [Int], slashOffsets: [Int], length: Int) -> VerticalSlashIndex {
        precondition(length >= 1, "length must be >= 1, got \(length)")
        precondition(slashOffsets.allSatisfy { $0 >= 0 }, "slash offsets must be >= 0 (o = i - j)")
        let rowBlocks = (length + blockSize - 1) / blockSize
        var index = VerticalSlashIndex(rowBlocks: rowBlocks, nnzS: slashOffsets.count, nnzV: verticals.count)
        // Upstream also skips row blocks with 64m >= N; with R = ceil(N/64) there are none left.
        for m in 0..<rowBlocks where m * blockSize < length {
            let row = convertRowBlock(start: m * blockSize, verticals: verticals, slashOffsets: slashOffsets)
            index.blockCount[m] = Int32(row.blockOffsets.count)
            index.columnCount[m] = Int32(row.columns.count)
            for (n, offset) in row.blockOffsets.enumerated() { index.blockOffset[m * index.nnzS + n] = Int32(offset) }
            for (n, column) in row.columns.enumerated() { index.columnIndex[m * index.nnzV + n] = Int32(column) }
        }
        return index
    }

    /// The index of an estimate (its verticals and offsets are already in upstream's order).
    package static func verticalSlashIndex(selection: VerticalSlashSelection) -> VerticalSlashIndex {
        verticalSlashIndex(verticals: selection.verticals, slashOffsets: selection.slashOffsets, length: selection.length)
    }

    /// One row block of upstream's conversion loop, statement for statement: a current key range
    /// `[rangeStart, rangeEnd)` grows from the diagonal windows in descending offset order while
    /// the verticals are consumed in ascending order against it.
    static func convertRowBlock(start: Int, verticals: [Int], slashOffsets: [Int]) -> (blockOffsets: [Int], columns: [Int]) {
        let end = start + blockSize
        // Exclusive right end of offset o's 64-key window, clamped so the window starts at >= 0.
        func windowEnd(_ offset: Int) -> Int { max(end - offset, blockSize) }
        // Skip the leading diagonals that miss this row block (o >= end).
        guard let firstSlash = slashOffsets.firstIndex(where: { $0 < end }) else { return ([], []) }
        var nextSlash = firstSlash + 1
        var rangeEnd = windowEnd(slashOffsets[firstSlash])
        var rangeStart = rangeEnd - blockSize

        // When the verticals run out the current one becomes a sentinel no range reaches
        // (ranges end before end + 64), so the loop only consumes offsets from then on.
        let exhausted = end + blockSize
        var nextVertical = 0
        func takeVertical() -> Int {
            guard nextVertical < verticals.count else { return exhausted }
            defer { nextVertical += 1 }
            return verticals[nextVertical]
        }
        var vertical = takeVertical()

        var blockOffsets: [Int] = []
        var columns: [Int] = []
        func emitRange() { blockOffsets += stride(from: rangeStart, to: rangeEnd, by: blockSize) }
        while true {
            if vertical < rangeEnd {
                // Left of the range: a gap column. Inside it: already covered, dropped.
                if vertical < rangeStart { columns.append(vertical) }
                vertical = takeVertical()
            } else {
                guard nextSlash < slashOffsets.count else {
                    emitRange()  // verticals not yet consumed (>= rangeEnd) are dropped
                    break
                }
                let nextEnd = windowEnd(slashOffsets[nextSlash])
                nextSlash += 1
                if nextEnd > rangeEnd + blockSize {
                    emitRange()
                    rangeStart = nextEnd - blockSize
                    rangeEnd = nextEnd
                } else if nextEnd > rangeEnd {
                    rangeEnd += blockSize  // grows by a whole block, not to nextEnd
                }
            }
        }
        return (blockOffsets, columns)
    }

    /// Keys query `query` attends under a converted index: the stored 64-key windows of its row
    /// block, then the stored columns, intersected with `[0, query]` (the kernel masks windows
    /// element-wise causally; stored columns are always left of the row block). Section 6's
    /// `(R_m ∪ Vset) ∩ [0, i]` as upstream's kernel realises it. Ascending, each key once.
    package static func coveredKeys(index: VerticalSlashIndex, query: Int) -> [Int] {
        let m = query / blockSize
        precondition(query >= 0 && m < index.rowBlocks, "query \(query) outside the index's \(index.rowBlocks) row blocks")
        var covered = CausalKeyMask(query: query)
        for offset in index.blockOffsets(rowBlock: m) { covered.insert(offset..<(offset + blockSize)) }
        for column in index.columns(rowBlock: m) { covered.insert(column..<(column + 1)) }
        return covered.keys
    }
}
