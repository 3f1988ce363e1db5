import MInferenceCL
import RealModule
import Testing

/// The float64 pattern reference against hand-worked examples from the spec
/// (docs/MINFERENCE.md), brute-force recomputations and structural properties, so
/// that the GPU tests that lean on it rest on something checked.
@Suite("Pattern reference")
struct PatternReferenceTests {
    // MARK: - top-k and budgets

    @Test func topKBreaksTiesBySmallerIndex() {
        #expect(PatternReference.topK([1, 3, 3, 2], 1) == [1])
        #expect(PatternReference.topK([1, 3, 3, 2], 2) == [1, 2])
        #expect(PatternReference.topK([1, 3, 3, 2], 3) == [1, 2, 3])
        #expect(PatternReference.topK([0, 0, 0, 0, 0], 3) == [0, 1, 2])
        #expect(PatternReference.topK([5, 1, 5, 9], 2) == [0, 3])
    }

    @Test func topKRanksInfinityFirstThenNaN() {
        let inf = Double.infinity
        #expect(PatternReference.topK([inf, 5, inf, inf], 2) == [0, 2])
        #expect(PatternReference.topK([1, inf, 7, inf], 3) == [1, 2, 3])
        #expect(PatternReference.topK([-inf, -1], 1) == [1])
        #expect(PatternReference.topK([.nan, 1, -inf], 1) == [0])
        #expect(PatternReference.topK([1, .nan, -inf], 2) == [0, 1])
        #expect(PatternReference.topK([.nan, inf, 1e300, -.nan], 1) == [1])
        #expect(PatternReference.topK([.nan, inf, 1e300, -.nan], 3) == [0, 1, 3])
        #expect(PatternReference.topK([5, -.nan, .nan, 5], 2) == [1, 2], "NaN ties go to the smaller index")
    }

    @Test func topKClampsK() {
        #expect(PatternReference.topK([3, 1, 2], 0) == [])
        #expect(PatternReference.topK([3, 1, 2], -4) == [])
        #expect(PatternReference.topK([3, 1, 2], 10) == [0, 1, 2])
        #expect(PatternReference.topK([], 3) == [])
    }

    @Test func budgetsClampLikeUpstream() {
        #expect(PatternReference.clampedBudgets(vertical: 1000, slash: 6096, length: 8192) == (1000, 6096))
        #expect(PatternReference.clampedBudgets(vertical: 5, slash: 5, length: 1000) == (30, 50))
        #expect(PatternReference.clampedBudgets(vertical: 100, slash: 75, length: 1000) == (100, 75))
        #expect(PatternReference.clampedBudgets(vertical: 1000, slash: 6096, length: 333) == (333, 333))
        #expect(PatternReference.clampedBudgets(vertical: 1, slash: 1, length: 40) == (30, 40))
        #expect(PatternReference.clampedBudgets(vertical: 1, slash: 1, length: 20) == (20, 20))
    }

    // MARK: - vertical-slash index: worked examples

    /// Section 5's worked example, including the 115-key covered set of query 1300.
    @Test func specWorkedExample() {
        let index = PatternReference.verticalSlashIndex(verticals: Array(0..<30) + [300, 1300], slashOffsets: [1000, 0],
                                                        length: 2048)
        #expect(index.rowBlocks == 32 && index.nnzS == 2 && index.nnzV == 32)
        #expect(index.blockCount[20] == 2)
        #expect(index.blockOffsets(rowBlock: 20) == [280, 1280])
        #expect(index.columns(rowBlock: 20) == Array(0..<30))
        let covered = PatternReference.coveredKeys(index: index, query: 1300)
        #expect(covered == Array(0..<30) + Array(280..<344) + Array(1280...1300))
        #expect(covered.count == 115)
    }

    /// Offsets 10 then 0 in row block 10 (rows 640..<704): the window of offset 0 ends 10 keys
    /// past the current range, so the range grows by a whole block to 758, not to 704; the
    /// verticals 700 and 720 fall inside it and are dropped.
    @Test func growsByWholeBlock() {
        let index = PatternReference.verticalSlashIndex(verticals: Array(0..<30) + [700, 720], slashOffsets: [10, 0],
                                                        length: 2048)
        #expect(index.blockOffsets(rowBlock: 10) == [630, 694])
        #expect(index.columns(rowBlock: 10) == Array(0..<30))
        #expect(PatternReference.coveredKeys(index: index, query: 700) == Array(0..<30) + Array(630...700))

        // Offset 150's window ends at 554, so [440, 504) grows to [440, 568): vertical 560 lies
        // inside and is dropped (growing only to 554 would store it as a column).
        let grown = PatternReference.verticalSlashIndex(verticals: [560], slashOffsets: [200, 150, 0], length: 2048)
        #expect(grown.blockOffsets(rowBlock: 10) == [440, 504, 640])
        #expect(grown.columns(rowBlock: 10) == [])
    }

    /// Windows near key 0 are clamped to [0, 64) (E(o) = max(end - o, 64)); offsets >= end are
    /// skipped; verticals inside a range are dropped, the ones left of it kept.
    @Test func clampsWindowsAtKeyZero() {
        let index = PatternReference.verticalSlashIndex(verticals: Array(0..<30), slashOffsets: [1000, 50, 0], length: 2048)
        #expect(index.blockOffsets(rowBlock: 0) == [0])
        #expect(index.columns(rowBlock: 0) == [])
        #expect(index.blockOffsets(rowBlock: 1) == [14, 78])
        #expect(index.columns(rowBlock: 1) == Array(0..<14))
        #expect(index.blockOffsets(rowBlock: 15) == [0, 910, 974])
        #expect(index.columns(rowBlock: 15) == [])
        #expect(index.blockOffsets(rowBlock: 16) == [24, 974, 1038])
        #expect(index.columns(rowBlock: 16) == Array(0..<24))
    }

    /// Without offsets below `end` upstream reads out of bounds; the reference emits nothing for
    /// that row block. Without offset 0, verticals right of the last range are dropped.
    @Test func rowBlocksNoDiagonalReachesAreEmpty() {
        let index = PatternReference.verticalSlashIndex(verticals: Array(0..<30) + [100], slashOffsets: [500], length: 1000)
        #expect(index.rowBlocks == 16 && index.blockOffset.count == 16 && index.columnIndex.count == 16 * 31)
        for m in 0..<7 {
            #expect(index.blockCount[m] == 0 && index.columnCount[m] == 0, "row block \(m)")
        }
        #expect(PatternReference.coveredKeys(index: index, query: 100) == [])
        #expect(index.blockOffsets(rowBlock: 7) == [0])
        #expect(index.columns(rowBlock: 7) == [])
        #expect(index.blockOffsets(rowBlock: 8) == [12])
        #expect(index.columns(rowBlock: 8) == Array(0..<12))
        #expect(PatternReference.coveredKeys(index: index, query: 520) == Array(0..<76))
    }

    /// An offset equal to `end` misses the row block (i - o < start) and is skipped; the first
    /// offset below `end` opens the range.
    @Test func skipsOffsetsAtRowBlockEnd() {
        let index = PatternReference.verticalSlashIndex(verticals: [], slashOffsets: [128, 0], length: 256)
        #expect(index.blockOffsets(rowBlock: 0) == [0])
        #expect(index.blockOffsets(rowBlock: 1) == [64])
        #expect(index.blockOffsets(rowBlock: 2) == [0, 128])
        #expect(index.blockOffsets(rowBlock: 3) == [64, 192])
    }

    @Test func emptyVerticalListUsesSentinel() {
        let index = PatternReference.verticalSlashIndex(verticals: [], slashOffsets: [0], length: 130)
        #expect(index.nnzV == 0 && index.columnIndex.isEmpty && index.columnCount == [0, 0, 0])
        #expect((0..<3).map { index.blockOffsets(rowBlock: $0) } == [[0], [64], [128]])
        #expect(PatternReference.coveredKeys(index: index, query: 129) == [128, 129])
    }

    @Test func firstDifferenceNamesTheRowBlock() {
        let index = PatternReference.verticalSlashIndex(verticals: Array(0..<30) + [300], slashOffsets: [1000, 0], length: 2048)
        #expect(index.firstDifference(from: index) == nil)
        var changed = index
        changed.blockOffset[20 * changed.nnzS] += 1
        #expect(changed != index)
        #expect(index.firstDifference(from: changed)?.hasPrefix("row block 20") == true)
    }

    // MARK: - vertical-slash index: properties

    /// Random selections (clustered diagonals so ranges separate and gaps appear), with and
    /// without the main diagonal.
    @Test(arguments: [(200, 1 as UInt64), (333, 2), (1000, 3), (1000, 4), (333, 5)])
    func indexPropertiesOnRandomSelections(_ length: Int, _ seed: UInt64) {
        for includeMainDiagonal in [true, false] {
            var random = SeededRandom(seed: seed)
            let selection = RandomSelection(length: length, includeMainDiagonal: includeMainDiagonal, using: &random)
            let index = PatternReference.verticalSlashIndex(verticals: selection.verticals,
                                                            slashOffsets: selection.slashOffsets, length: length)
            checkIndexStructure(index, verticals: selection.verticals, slashOffsets: selection.slashOffsets, length: length)
            if includeMainDiagonal {
                checkCoverage(index, verticals: selection.verticals, slashOffsets: selection.slashOffsets, length: length)
            }
        }
    }

    /// The estimator's own selections on Gaussian inputs, with budgets that leave room for
    /// non-forced verticals and diagonals.
    @Test(arguments: [(200, 40, 120), (333, 60, 150), (1000, 40, 120), (1000, 300, 200)])
    func indexPropertiesOnEstimatedSelections(_ length: Int, _ vertical: Int, _ slash: Int) throws {
        let fixture = try Fixture(length: length, seed: UInt64(length + vertical), scale: 2)
        let selection = PatternReference.verticalSlashEstimate(reference: fixture.reference, head: 0, vertical: vertical, slash: slash)
        let budgets = PatternReference.clampedBudgets(vertical: vertical, slash: slash, length: length)
        #expect(selection.verticals.count == budgets.vertical && selection.slashOffsets.count == budgets.slash)
        #expect(Array(0..<30).allSatisfy(selection.verticals.contains))
        #expect(Array(0..<100).allSatisfy(selection.slashOffsets.contains))
        let index = PatternReference.verticalSlashIndex(selection: selection)
        checkIndexStructure(index, verticals: selection.verticals, slashOffsets: selection.slashOffsets, length: length)
        checkCoverage(index, verticals: selection.verticals, slashOffsets: selection.slashOffsets, length: length)
    }

    /// Budgets >= N select every column and every diagonal, so every causal key is covered.
    @Test(arguments: [1, 20, 40, 64, 65, 200, 333])
    func fullBudgetsCoverEverythingCausal(_ length: Int) throws {
        let fixture = try Fixture(length: length, seed: 11)
        let selection = PatternReference.verticalSlashEstimate(reference: fixture.reference, head: 0, vertical: length, slash: length)
        #expect(selection.verticals == Array(0..<length))
        #expect(selection.slashOffsets == Array((0..<length).reversed()))
        let index = PatternReference.verticalSlashIndex(selection: selection)
        for query in 0..<length where PatternReference.coveredKeys(index: index, query: query) != Array(0...query) {
            Issue.record("N \(length): query \(query) not fully covered")
            break
        }
    }

    /// Short sequences: budgets clamp to N, and below 30 / 100 the forced entries are everything.
    @Test func shortSequencesClampBudgets() throws {
        let n20 = PatternReference.verticalSlashEstimate(reference: try Fixture(length: 20, seed: 3).reference, head: 0,
                                                         vertical: 1, slash: 1)
        #expect(n20.verticals == Array(0..<20))
        #expect(n20.slashOffsets == Array((0..<20).reversed()))
        #expect(n20.columnScores.allSatisfy { $0.isInfinite } && n20.diagonalScores.allSatisfy { $0.isInfinite })

        let n40 = PatternReference.verticalSlashEstimate(reference: try Fixture(length: 40, seed: 4).reference, head: 0,
                                                         vertical: 1, slash: 1)
        #expect(n40.verticals == Array(0..<30))
        #expect(n40.slashOffsets == Array((0..<40).reversed()))
        #expect(n40.columnScores[30...].allSatisfy { $0.isFinite })

        let n1 = PatternReference.verticalSlashEstimate(reference: try Fixture(length: 1, seed: 5).reference, head: 0,
                                                        vertical: 1000, slash: 6096)
        #expect(n1.verticals == [0] && n1.slashOffsets == [0])
        #expect(PatternReference.coveredKeys(index: PatternReference.verticalSlashIndex(selection: n1), query: 0) == [0])
    }

    /// S < 100: the tie among the forced +inf diagonals goes to the smaller offsets.
    @Test func smallSlashBudgetKeepsNearestDiagonals() throws {
        let fixture = try Fixture(length: 333, seed: 6)
        let selection = PatternReference.verticalSlashEstimate(reference: fixture.reference, head: 0, vertical: 30, slash: 60)
        #expect(selection.slashOffsets == Array((0..<60).reversed()))
        #expect(selection.verticals == Array(0..<30))
    }

    // MARK: - vertical-slash estimate against a naive recomputation

    /// Column and diagonal sums from an O(L*N) loop over the raw tensors, with the KV head
    /// derived independently (batch 2, 4 query heads sharing 2 KV heads, last head).
    @Test(arguments: [70, 200, 333])
    func estimateMatchesNaiveSums(_ length: Int) throws {
        let fixture = try Fixture(length: length, seed: UInt64(length), scale: 2, batch: 2, headsQ: 4, headsKV: 2)
        let head = 7  // batch 1, query head 3 -> KV head 1 of batch 1
        let vertical = 45, slash = 130
        let selection = PatternReference.verticalSlashEstimate(reference: fixture.reference, head: head, vertical: vertical, slash: slash)
        let naive = naiveScores(fixture, head: head)
        #expect(selection.columnScores.count == length && selection.diagonalScores.count == length)
        for j in 0..<length {
            let expected = j < 30 ? Double.infinity : naive.columns[j]
            #expect(matches(selection.columnScores[j], expected), "column \(j): \(selection.columnScores[j]) vs \(expected)")
        }
        for o in 0..<length {
            let expected = o < 100 ? Double.infinity : naive.diagonals[o]
            #expect(matches(selection.diagonalScores[o], expected), "offset \(o): \(selection.diagonalScores[o]) vs \(expected)")
        }
        // Probability mass is conserved: the last L rows sum to L in both views.
        let lastQueries = Double(min(64, length))
        #expect(abs(naive.columns.reduce(0, +) - lastQueries) < 1e-9 && abs(naive.diagonals.reduce(0, +) - lastQueries) < 1e-9)

        let budgets = PatternReference.clampedBudgets(vertical: vertical, slash: slash, length: length)
        #expect(selection.verticals == selection.verticals.sorted() && Set(selection.verticals).count == budgets.vertical)
        #expect(selection.slashOffsets == selection.slashOffsets.sorted(by: >) && Set(selection.slashOffsets).count == budgets.slash)
        let forcedColumns = naive.columns.enumerated().map { $0.offset < 30 ? Double.infinity : $0.element }
        let forcedDiagonals = naive.diagonals.enumerated().map { $0.offset < 100 ? Double.infinity : $0.element }
        #expect(selectsLargest(selection.verticals, of: forcedColumns))
        #expect(selectsLargest(selection.slashOffsets, of: forcedDiagonals))
    }

    // MARK: - block-sparse

    @Test(arguments: [(64, 2), (128, 3), (333, 6), (333, 100), (1000, 16)])
    func blockSparseWithEnoughBlocksIsDense(_ length: Int, _ blocks: Int) throws {
        #expect(blocks >= PatternReference.paddedBlockCount(length: length))
        let fixture = try Fixture(length: length, seed: 21)
        let selection = PatternReference.blockSparseSelection(reference: fixture.reference, head: 0, blocks: blocks)
        #expect(selection.count == (length + 63) / 64)
        #expect(selection.enumerated().allSatisfy { m, blocks in blocks == Array(0...m) })
        for query in stride(from: 0, to: length, by: 7) {
            #expect(PatternReference.coveredKeys(blockSelection: selection, query: query, length: length) == Array(0...query))
        }
    }

    /// Random inputs with fewer blocks than the sequence: each row block keeps min(m + 1, K)
    /// causal blocks, and they are the best-scoring ones by independently pooled scores.
    @Test(arguments: [(333, 2), (333, 3), (1000, 3), (1000, 5), (1000, 1)])
    func blockSparseSelectsBestPooledBlocks(_ length: Int, _ blocks: Int) throws {
        let fixture = try Fixture(length: length, seed: UInt64(length * blocks), headsQ: 2, headsKV: 1)
        let head = 1
        let selection = PatternReference.blockSparseSelection(reference: fixture.reference, head: head, blocks: blocks)
        let scores = naivePooledScores(fixture, head: head)
        #expect(selection.count == scores.count)
        let referenceScores = PatternReference.blockScores(reference: fixture.reference, head: head)
        for (m, row) in scores.enumerated() {
            #expect(zip(row, referenceScores[m]).allSatisfy { matches($0, $1) }, "pooled scores of row block \(m)")
            let chosen = selection[m]
            #expect(chosen.count == min(m + 1, blocks), "row block \(m): \(chosen)")
            #expect(chosen == chosen.sorted() && Set(chosen).count == chosen.count && chosen.allSatisfy { (0...m).contains($0) })
            #expect(selectsLargest(chosen, of: row), "row block \(m) picked \(chosen)")
        }
    }

    /// The mean of the last, partial key block divides by 64 (zero padding): two keys of 10 pool
    /// to 20/64, below a full block of 0.5s, so row block 2 keeps blocks 0 and 1, not 0 and 2.
    @Test func blockSparsePoolsPartialBlockOverSixtyFour() throws {
        let length = 130, dim = 8
        let problem = try AttentionProblem(headsQ: 1, headsKV: 1, queryLength: length, keyLength: length, headDim: dim,
                                           inputDType: .f32)
        func rows(_ value: (Int) -> Float) -> [Float] { (0..<length).flatMap { i in [value(i)] + Array(repeating: 0, count: dim - 1) } }
        let q = try Tensor(shape: problem.queryShape, dtype: .f32, values: rows { _ in 1 })
        let k = try Tensor(shape: problem.keyShape, dtype: .f32, values: rows { $0 < 64 ? 1 : $0 < 128 ? 0.5 : 10 })
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: k)
        let scores = PatternReference.blockScores(reference: reference, head: 0)
        #expect(matches(scores[2][2], (2.0 / 64) * (20.0 / 64)))
        let selection = PatternReference.blockSparseSelection(reference: reference, head: 0, blocks: 2)
        #expect(selection == [[0], [0, 1], [0, 1]])
        #expect(PatternReference.coveredKeys(blockSelection: selection, query: 129, length: length) == Array(0..<128))
    }

    @Test func blockSparseCoveredKeysAreCausalAndCut() {
        let selection = [[0], [0, 1], [0, 2], [1, 3]]
        #expect(PatternReference.coveredKeys(blockSelection: selection, query: 150, length: 200)
                == Array(0..<64) + Array(128...150))
        #expect(PatternReference.coveredKeys(blockSelection: selection, query: 199, length: 200)
                == Array(64..<128) + Array(192...199))
        #expect(PatternReference.coveredKeys(blockSelection: selection, query: 3, length: 200) == [0, 1, 2, 3])
        #expect(PatternReference.paddedBlockCount(length: 128) == 3 && PatternReference.paddedBlockCount(length: 130) == 3)
    }

    // MARK: - A-shape

    @Test func aShapeExample() {
        #expect(PatternReference.coveredKeys(aShapeSink: 2, window: 3, query: 10) == [0, 1, 8, 9, 10])
        #expect(PatternReference.coveredKeys(aShapeSink: 4, window: 1, query: 2) == [0, 1, 2])
    }

    @Test func aShapeMatchesDefinition() {
        for sink in [0, 1, 3, 16, 100] {
            for window in [1, 2, 5, 64, 300] {
                for query in [0, 1, 4, 15, 16, 17, 63, 64, 99, 100, 101, 250, 400] {
                    let expected = (0...query).filter { query - $0 < window || $0 < sink }
                    #expect(PatternReference.coveredKeys(aShapeSink: sink, window: window, query: query) == expected,
                            "sink \(sink) window \(window) query \(query)")
                }
            }
        }
    }
}

// MARK: - Helpers

/// Random q/k/v for one prefill problem, f32 so the float64 reference sees the exact values.
private struct Fixture {
    let inputs: RandomInputs
    let reference: ReferenceAttention
    var problem: AttentionProblem { reference.problem }

    init(length: Int, seed: UInt64, scale: Float = 1, batch: Int = 1, headsQ: Int = 1, headsKV: Int = 1) throws {
        let problem = try AttentionProblem(batch: batch, headsQ: headsQ, headsKV: headsKV, queryLength: length,
                                           keyLength: length, headDim: 64, inputDType: .f32)
        inputs = try RandomInputs(problem: problem, seed: seed, scale: scale)
        reference = ReferenceAttention(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v)
    }

    /// KV head of a flattened query head, from the shapes alone.
    func kvHead(of head: Int) -> Int {
        let batch = head / problem.headsQ, queryHead = head % problem.headsQ
        return batch * problem.headsKV + queryHead / (problem.headsQ / problem.headsKV)
    }
}

/// A vertical list (the forced 30 plus scattered columns) and clustered diagonal offsets.
private struct RandomSelection {
    var verticals: [Int]
    var slashOffsets: [Int]

    init(length: Int, includeMainDiagonal: Bool, using random: inout SeededRandom) {
        var columns = Set(0..<min(30, length))
        for _ in 0..<Int.random(in: 0...(length / 4), using: &random) { columns.insert(Int.random(in: 0..<length, using: &random)) }
        var offsets = Set<Int>()
        for _ in 0..<Int.random(in: 1...6, using: &random) {  // clusters of neighbouring diagonals
            let centre = Int.random(in: 0..<length, using: &random)
            for o in max(0, centre - Int.random(in: 0...12, using: &random))...centre { offsets.insert(o) }
        }
        for _ in 0..<Int.random(in: 0...8, using: &random) { offsets.insert(Int.random(in: 0..<length, using: &random)) }
        if includeMainDiagonal { offsets.insert(0) } else { offsets.remove(0); offsets.insert(length - 1) }
        verticals = columns.sorted()
        slashOffsets = offsets.sorted(by: >)
    }
}

/// Structure every converted index has, whatever the selection: counts within the arrays,
/// unused entries 0, ranges disjoint and increasing, stored columns strictly left of the row
/// block, outside every range, ascending and taken from the verticals.
private func checkIndexStructure(_ index: VerticalSlashIndex, verticals: [Int], slashOffsets: [Int], length: Int,
                                 sourceLocation: SourceLocation = #_sourceLocation) {
    let rows = (length + 63) / 64
    #expect(index.rowBlocks == rows && index.nnzS == slashOffsets.count && index.nnzV == verticals.count,
            sourceLocation: sourceLocation)
    let verticalSet = Set(verticals)
    let hasMainDiagonal = slashOffsets.contains(0)
    for m in 0..<rows {
        let start = 64 * m
        let blocks = index.blockOffsets(rowBlock: m), columns = index.columns(rowBlock: m)
        let ok = index.blockCount[m] >= 0 && Int(index.blockCount[m]) <= index.nnzS
            && index.columnCount[m] >= 0 && Int(index.columnCount[m]) <= index.nnzV
            && index.blockOffset[(m * index.nnzS + blocks.count)..<((m + 1) * index.nnzS)].allSatisfy { $0 == 0 }
            && index.columnIndex[(m * index.nnzV + columns.count)..<((m + 1) * index.nnzV)].allSatisfy { $0 == 0 }
            && blocks.allSatisfy { $0 >= 0 }
            && zip(blocks, blocks.dropFirst()).allSatisfy { $1 - $0 >= 64 }
            && columns.allSatisfy { c in c < start && verticalSet.contains(c) && !blocks.contains { (c - $0) >= 0 && c - $0 < 64 } }
            && zip(columns, columns.dropFirst()).allSatisfy { $0 < $1 }
        #expect(ok, "row block \(m): blocks \(blocks), columns \(columns)", sourceLocation: sourceLocation)
        if hasMainDiagonal {
            // The main-diagonal window [start, start + 64) sits in the last range, so every
            // vertical left of the row block is either inside a range or stored, none lost.
            let inRange = { (c: Int) in blocks.contains { c >= $0 && c < $0 + 64 } }
            #expect((blocks.last ?? Int.min) + 64 >= start + 64, "row block \(m): last range ends before the row block",
                    sourceLocation: sourceLocation)
            #expect(columns == verticals.filter { $0 < start && !inRange($0) }, "row block \(m)", sourceLocation: sourceLocation)
        }
    }
}

/// Every query's covered set is causal, sorted, unique, and contains the token-exact pattern.
private func checkCoverage(_ index: VerticalSlashIndex, verticals: [Int], slashOffsets: [Int], length: Int,
                           sourceLocation: SourceLocation = #_sourceLocation) {
    for query in 0..<length {
        let covered = PatternReference.coveredKeys(index: index, query: query)
        let isCausalSorted = zip(covered, covered.dropFirst()).allSatisfy { $0 < $1 } && covered.allSatisfy { (0...query).contains($0) }
        var inside = [Bool](repeating: false, count: query + 1)
        for j in covered where (0...query).contains(j) { inside[j] = true }
        let tokenExact = verticals.filter { $0 <= query } + slashOffsets.filter { $0 <= query }.map { query - $0 }
        let missing = tokenExact.filter { !inside[$0] }
        if !isCausalSorted || !missing.isEmpty {
            Issue.record("query \(query): causal-sorted \(isCausalSorted), token-exact keys missing \(missing.prefix(8))",
                         sourceLocation: sourceLocation)
            return
        }
    }
}

/// Column and diagonal sums of the last L softmax rows, straight from the tensors.
private func naiveScores(_ fixture: Fixture, head: Int) -> (columns: [Double], diagonals: [Double]) {
    let problem = fixture.problem
    let n = problem.keyLength, d = problem.headDim, lastQueries = min(64, n)
    let q = fixture.inputs.q.floats().map(Double.init), k = fixture.inputs.k.floats().map(Double.init)
    let kvHead = fixture.kvHead(of: head)
    let scale = Double(problem.scale)
    var probabilities = [[Double]](repeating: [Double](repeating: 0, count: n), count: lastQueries)
    for r in 0..<lastQueries {
        let i = n - lastQueries + r
        let logits = (0...i).map { j in scale * (0..<d).reduce(0.0) { $0 + q[(head * n + i) * d + $1] * k[(kvHead * n + j) * d + $1] } }
        let peak = logits.max()!
        let weights = logits.map { Double.exp($0 - peak) }
        let total = weights.reduce(0, +)
        for j in 0...i { probabilities[r][j] = weights[j] / total }
    }
    let columns = (0..<n).map { j in (0..<lastQueries).reduce(0.0) { $0 + probabilities[$1][j] } }
    let diagonals = (0..<n).map { o in
        (0..<lastQueries).reduce(0.0) { sum, r in
            let j = (n - lastQueries + r) - o
            return j >= 0 ? sum + probabilities[r][j] : sum
        }
    }
    return (columns, diagonals)
}

/// Pooled block scores with explicit zero padding: sums over real rows divided by 64.
private func naivePooledScores(_ fixture: Fixture, head: Int) -> [[Double]] {
    let problem = fixture.problem
    let n = problem.keyLength, d = problem.headDim
    let q = fixture.inputs.q.floats().map(Double.init), k = fixture.inputs.k.floats().map(Double.init)
    let kvHead = fixture.kvHead(of: head)
    func pooled(_ x: [Double], _ base: Int, _ block: Int) -> [Double] {
        (0..<d).map { c in (64 * block..<min(64 * block + 64, n)).reduce(0.0) { $0 + x[base + $1 * d + c] } / 64 }
    }
    return (0..<((n + 63) / 64)).map { m in
        let qm = pooled(q, head * n * d, m)
        return (0...m).map { b in zip(qm, pooled(k, kvHead * n * d, b)).reduce(0.0) { $0 + $1.0 * $1.1 } }
    }
}

/// Every chosen score is at least every score left out (the top-k property, independent of how
/// ties are ordered).
private func selectsLargest(_ chosen: [Int], of scores: [Double]) -> Bool {
    let chosenSet = Set(chosen)
    let weakestChosen = chosen.map { scores[$0] }.min() ?? .infinity
    let strongestLeft = scores.indices.filter { !chosenSet.contains($0) }.map { scores[$0] }.max() ?? -.infinity
    return weakestChosen >= strongestLeft
}

/// Equal within float64 summation-order noise (infinities must match exactly).
private func matches(_ x: Double, _ y: Double) -> Bool {
    x.isInfinite || y.isInfinite ? x == y : abs(x - y) <= 1e-12 * max(1, abs(y))
}
