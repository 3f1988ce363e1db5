@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// The device forward pass (weights and KV cache on the device, attention through the engine)
/// against the CPU reference forward pass on a tiny random model written as GGUF.
@Suite("Device forward pass")
struct DeviceModelTests {
    static let tolerance = 1e-4

    @Test func logitsEqualTheReference() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 7))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 64)
        var rng = SeededGenerator(seed: 5)
        let tokens = (0..<37).map { _ in Int32.random(in: 0..<100, using: &rng) }
        let want = reference.logits(tokens: tokens)

        // One call, the last 5 positions.
        let whole = try model.prefill(tokens: tokens, lastLogits: 5)
        #expect(whole.count == 5)
        for (i, row) in whole.enumerated() {
            let error = relativeL2(row, want[32 + i].map(Double.init))
            #expect(error <= Self.tolerance, "position \(32 + i): \(error)")
        }
        // Chunked prefill (chunks of 8 against the cache) gives the same logits.
        model.reset()
        let chunked = try model.prefill(tokens: tokens, chunk: 8, lastLogits: 5)
        for (a, b) in zip(chunked, whole) { #expect(relativeL2(a, b.map(Double.init)) <= 1e-5) }
        // Continuing after the cache: the remaining tokens as a second prefill.
        model.reset()
        _ = try model.prefill(tokens: Array(tokens[0..<20]))
        let rest = try model.prefill(tokens: Array(tokens[20...]), lastLogits: 1)
        #expect(relativeL2(rest[0], want[36].map(Double.init)) <= Self.tolerance)
        #expect(model.position == 37)
    }

    @Test func sparsePlanWithCoveringBudgetsEqualsDense() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 9))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 128)
        let tokens = (0..<100).map { Int32($0 % 97) }
        let dense = try model.prefill(tokens: tokens, chunk: 40, lastLogits: 3)
        model.reset()
        let plan = LayerPlan(heads: [.aShape(sink: 128, window: 128), .verticalSlash(vertical: 128, slash: 128), .blockSparse(blocks: 3), .dense])
        let sparse = try model.prefill(tokens: tokens, chunk: 40, lastLogits: 3, options: SparseOptions(denseFallback: .never)) { _ in plan }
        for (a, b) in zip(sparse, dense) { #expect(relativeL2(a, b.map(Double.init)) <= 1e-5) }
    }

    @Test func refusesWhatItCannotRun() throws {
        let model = try DeviceModel(model: try ReferenceModel(gguf: try tinyLlama(seed: 3)), engine: try TestDevice.engine(), capacity: 16)
        #expect(throws: AttentionError.invalidArgument("0 cached + 17 new tokens exceed the cache's 16")) {
            try model.prefill(tokens: [Int32](repeating: 1, count: 17))
        }
        #expect(throws: AttentionError.invalidArgument("token 100 at 1 is outside the vocabulary of 100")) {
            try model.prefill(tokens: [1, 100])
        }
    }
}
