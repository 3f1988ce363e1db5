@testable import MInferenceCL
import Testing

/// The device top-k (CLKernels/topk.cl) against a sort on the CPU: k largest per row, ties to the
/// smaller index, +inf above every finite score, indices ascending; causal rows see (r % group) + 1.
@Suite("Top-k on the device")
struct TopKTests {
    /// Rows mixing long runs of one value (one radix bin per pass), few distinct values (ties),
    /// infinities, signed zeros and plain random scores.
    static func rows(count: Int, length: Int, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        var values: [Float] = []
        for r in 0..<count {
            for _ in 0..<length {
                let u = random.next()
                switch r % 4 {
                case 0: values.append(u % 7 == 0 ? random.normal() : 3.5)
                case 1: values.append(Float(Int(u % 5)) - 2)
                case 2: values.append([Float.infinity, -.infinity, 0, -0.0, 1e-30, -1e-30][Int(u % 6)])
                default: values.append(random.normal() * 100)
                }
            }
        }
        return values
    }

    static func expected(_ row: ArraySlice<Float>, k: Int) -> [Int32] {
        let ranked = row.indices.sorted { a, b in
            row[a] != row[b] ? row[a] > row[b] : a < b
        }
        return ranked.prefix(k).map { Int32($0 - row.startIndex) }.sorted()
    }

    /// Short, odd and long rows (the last: 78 keys per work-item per pass) and causal rows.
    @Test("Full rows and causal rows match a CPU sort",
          arguments: [(1, 5, false), (12, 1000, false), (8, 4099, false), (70, 70, true), (7, 20000, false)])
    func matchesSort(k: Int, length: Int, causal: Bool) throws {
        let context = try TestDevice.engine().context
        let count = causal ? length : 8
        let scores = Self.rows(count: count, length: length, seed: UInt64(length * 31 + k))
        let buffer = try DeviceBuffer(context: context, copying: scores, label: "scores")
        let (selection, _) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: buffer, stride: length, count: count, length: length, causal: causal, rowsPerGroup: count,
            kOfGroup: [Int32(k)]))
        try context.finish()
        let indices = try selection.indices.read(as: Int32.self, count: count * selection.stride)
        let counts = try selection.counts.read(as: Int32.self, count: count)
        for r in 0..<count {
            let n = causal ? r + 1 : length
            let want = Self.expected(scores[(r * length)..<(r * length + n)], k: min(k, n))
            #expect(Int(counts[r]) == want.count, "row \(r)")
            let got = Array(indices[(r * selection.stride)..<(r * selection.stride + Int(counts[r]))])
            #expect(got == want, "row \(r): device \(got.prefix(12)) cpu \(want.prefix(12))")
        }
    }

    /// NaN of both signs (and with payloads), ±inf and finite scores: +inf first, then every NaN
    /// (ties to the smaller index), then the finite scores, exactly as PatternReference.topK.
    @Test("NaN of either sign ranks below +inf and above every finite score", arguments: [(3, 40), (17, 300), (100, 1001)])
    func nanRanksBelowInfinity(k: Int, length: Int) throws {
        let context = try TestDevice.engine().context
        let count = 6
        var random = SeededRandom(seed: UInt64(k * 1000 + length))
        let specials: [Float] = [.nan, -.nan, Float(bitPattern: 0x7f80_0001), Float(bitPattern: 0xffc0_1234), .infinity, -.infinity]
        var scores: [Float] = []
        for r in 0..<count {
            for _ in 0..<length {
                let u = random.next()
                // row 0: every entry NaN; the others: a share of specials growing with r
                scores.append(r == 0 ? specials[Int(u % 4)] : u % 8 < UInt64(r) ? specials[Int(u / 8 % 6)] : random.normal())
            }
        }
        let buffer = try DeviceBuffer(context: context, copying: scores, label: "scores")
        let (selection, _) = try TopKKernel.enqueue(context: context, TopKKernel.Rows(
            scores: buffer, stride: length, count: count, length: length, causal: false, rowsPerGroup: count, kOfGroup: [Int32(k)]))
        try context.finish()
        let indices = try selection.indices.read(as: Int32.self, count: count * selection.stride)
        let counts = try selection.counts.read(as: Int32.self, count: count)
        for r in 0..<count {
            let row = scores[(r * length)..<((r + 1) * length)].map(Double.init)
            let want = PatternReference.topK(row, k).map(Int32.init)
            let got = Array(indices[(r * selection.stride)..<(r * selection.stride + Int(counts[r]))])
            #expect(got == want, "row \(r): device \(got.prefix(12)) reference \(want.prefix(12))")
        }
    }
}
