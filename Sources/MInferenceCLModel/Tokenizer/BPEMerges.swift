/// The merge table of a byte-level BPE vocabulary and the merge loop.
///
/// A word starts as one token per byte; the adjacent pair with the lowest merge rank is replaced
/// by its merged token, ties going to the leftmost pair, until no pair has a rank. This is what
/// llama.cpp (`llm_tokenizer_bpe_session`) and Hugging Face `tokenizers` compute; like them it
/// keeps candidate pairs in a heap, so a long word (a run of 10,000 spaces) costs n log n, not n².
struct BPEMerges: Sendable {
    /// Key `left << 32 | right` (token ids); value `rank << 32 | merged id`.
    private let table: [UInt64: UInt64]
    /// Merges whose parts or result are not in the vocabulary, left out (Hugging Face refuses
    /// such a vocabulary; llama.cpp would produce a token it cannot look up).
    let skipped: Int

    var count: Int { table.count }

    /// - Parameters:
    ///   - merges: `"left right"` in rank order (`tokenizer.ggml.merges`).
    ///   - ids: token text to id.
    /// - Throws: `TokenizerError.badMerge` for an entry with no space after its first character.
    init(_ merges: [String], ids: [String: Int32]) throws {
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        var skipped = 0
        for (rank, merge) in merges.enumerated() {
            // llama.cpp looks for the space from the second character on.
            guard let space = merge.dropFirst().firstIndex(of: " ") else {
                throw TokenizerError.badMerge(index: rank, text: merge)
            }
            let left = String(merge[..<space]), right = String(merge[merge.index(after: space)...])
            guard let l = ids[left], let r = ids[right], let m = ids[left + right] else {
                skipped += 1
                continue
            }
            let key = Self.key(l, r)
            // The first (lowest) rank of a repeated pair wins.
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: m)) }
        }
        self.table = table
        self.skipped = skipped
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// A pair that may still be merged; stale once either side has changed.
    private struct Candidate: Comparable {
        var rank: UInt32
        var left: Int32
        var right: Int32
        var leftID: Int32
        var rightID: Int32
        var merged: Int32

        static func < (a: Self, b: Self) -> Bool { (a.rank, a.left) < (b.rank, b.left) }
    }

    /// Merges `symbols` (one token per byte) into the word's tokens, appended to `out`. A
    /// negative symbol (a byte without a token) merges with nothing and is left out.
    func apply(_ symbols: [Int32], into out: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else {
            out += symbols.filter { $0 >= 0 }
            return
        }
        var id = symbols
        // Doubly linked list over positions; `n` and -1 mean none. A merge keeps the left position.
        var next = Array(1...n)
        var prev = Array(-1..<n - 1)
        var alive = [Bool](repeating: true, count: n)
        var heap = MinHeap<Candidate>()
        func consider(_ l: Int, _ r: Int) {
            guard let entry = table[Self.key(id[l], id[r])] else { return }
            heap.push(Candidate(rank: UInt32(entry >> 32), left: Int32(l), right: Int32(r), leftID: id[l], rightID: id[r],
                                merged: Int32(bitPattern: UInt32(truncatingIfNeeded: entry))))
        }
        for i in 0..<n - 1 { consider(i, i + 1) }
        while let c = heap.pop() {
            let l = Int(c.left), r = Int(c.right)
            guard alive[l], alive[r], next[l] == r, id[l] == c.leftID, id[r] == c.rightID else { continue }
            id[l] = c.merged
            alive[r] = false
            next[l] = next[r]
            if next[r] < n { prev[next[r]] = l }
            if prev[l] >= 0 { consider(prev[l], l) }
            if next[l] < n { consider(l, next[l]) }
        }
        var i = 0
        while i < n {
            if id[i] >= 0 { out.append(id[i]) }
            i = next[i]
        }
    }
}
