@testable import MInferenceCL
import Testing

/// A key outside a row's covered set cannot change that row's bits (the issue's case: one key
/// beyond the causal edge of earlier rows scaled by 8, its value 300, in chunked and prefill shapes).
@Suite("Keys a row does not attend")
struct MaskedKeyTests {
    @Test(arguments: [
        ("dense chunked 176 over 304, d 64, f16", 176, 304, 64, DType.f16, HeadPattern.dense, 250),
        ("dense chunked 176 over 304, d 128, bf16", 176, 304, 128, .bf16, .dense, 200),
        ("dense prefill 300, d 128, f16", 300, 300, 128, .f16, .dense, 150),
        ("A-shape prefill 333, d 64, f16", 333, 333, 64, .f16, .aShape(sink: 16, window: 48), 100),
    ])
    func rowsThatDoNotAttendAKeyKeepTheirBits(_ c: (String, Int, Int, Int, DType, HeadPattern, Int)) throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 4, headsKV: 2, queryLength: c.1, keyLength: c.2, headDim: c.3, inputDType: c.4)
        let differences = try MaskedKeyIndependence.differences(engine: engine, problem: problem, pattern: c.5, key: c.6, seed: 11)
        #expect(differences.isEmpty, "\(c.0): \(differences.joined(separator: "; "))")
    }

    @Test("The check reports rows that do attend the key when told they do not")
    func checkCanFail() throws {
        let engine = try TestDevice.engine()
        let problem = try AttentionProblem(headsQ: 2, headsKV: 1, queryLength: 100, keyLength: 100, headDim: 64, inputDType: .f32)
        #expect(MaskedKeyIndependence.attends(query: 60, key: 50, problem: problem, pattern: .aShape(sink: 1, window: 100)))
        #expect(!MaskedKeyIndependence.attends(query: 60, key: 50, problem: problem, pattern: .aShape(sink: 1, window: 5)))
        #expect(!MaskedKeyIndependence.attends(query: 40, key: 50, problem: problem, pattern: .dense))
        // Claiming that no row attends key 50 makes rows 50...99, which do, differ.
        let wrong = try MaskedKeyIndependence.differences(engine: engine, problem: problem, pattern: .dense, key: 50, seed: 3,
                                                          attending: { _, _ in false })
        #expect(wrong.last == "100 rows in all", "\(wrong)")
    }
}
