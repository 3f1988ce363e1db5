import Foundation
@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// Greedy decoding with the KV cache on the real SmolLM2-135M against llama.cpp's greedy
/// continuation of the same prompt (Fixtures/model/smollm2-greedy.json, made by
/// make_greedy_fixture.py beside it). The fixture's continuation has no near ties: at every step
/// llama.cpp's and a float64 NumPy pass's top-1 lead the second by at least 0.12 logits, while the
/// device pass is within about 1e-4 of float64, so equality is a fair requirement. It is also
/// position-sensitive: a decode whose RoPE positions are one too far leaves the continuation at
/// step 10 and moves the chosen tokens' logits by up to 3.3.
@Suite("Greedy decoding: the real SmolLM2-135M against llama.cpp",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct GreedyContinuationTests {
    struct Fixture: Decodable {
        struct Top: Decodable { var step: Int, ids: [Int], logits: [Double] }
        struct OffByOne: Decodable { var continuation: [Int32], firstDifferentStep: Int, maxLogitShift: Double }
        var text: String, promptTokens: [Int32], continuation: [Int32], continuationText: String
        var llamaCppMargins: [Double], float64Top2: [Top], offByOne: OffByOne
    }

    static func fixture() throws -> Fixture {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("model/smollm2-greedy.json")))
        return try JSONDecoder().decode(Fixture.self, from: data)
    }

    @Test("Prefill, then greedy decoding with the KV cache: the continuation is llama.cpp's, token for token")
    func continuationEqualsLlamaCpp() throws {
        let fixture = try Self.fixture()
        #expect(try RealModel.tokenizer.get().encode(fixture.text) == fixture.promptTokens)
        #expect(fixture.llamaCppMargins.min()! >= 0.1 && fixture.offByOne.continuation != fixture.continuation)
        let model = try DeviceModel(model: try RealModel.reference.get(), engine: try TestDevice.engine(),
                                    capacity: fixture.promptTokens.count + fixture.continuation.count)
        let last = try model.prefill(tokens: fixture.promptTokens, chunk: 4)[0]
        let continuation = try model.greedyDecode(after: last, count: fixture.continuation.count)
        let text = try RealModel.tokenizer.get().decode(continuation)
        print("greedy continuation on the device: \(text.debugDescription) (llama.cpp: \(fixture.continuationText.debugDescription))")
        #expect(continuation == fixture.continuation)
    }

    /// The decode steps' logits, fed llama.cpp's continuation (teacher forcing), against the float64
    /// pass over prompt and continuation at once: the two top tokens within 2e-3 at every step.
    @Test("Each decode step's top-2 logits within 2e-3 of the float64 pass")
    func decodeStepLogitsEqualFloat64() throws {
        let fixture = try Self.fixture()
        let model = try DeviceModel(model: try RealModel.reference.get(), engine: try TestDevice.engine(),
                                    capacity: fixture.promptTokens.count + fixture.continuation.count)
        var logits = try model.prefill(tokens: fixture.promptTokens)[0]
        var worst = 0.0
        for top in fixture.float64Top2 {
            #expect(LogitsComparison.argmax(logits) == top.ids[0], "step \(top.step)")
            for (id, value) in zip(top.ids, top.logits) { worst = max(worst, abs(Double(logits[id]) - value)) }
            logits = try model.prefill(tokens: [fixture.continuation[top.step]])[0]
        }
        print("decode steps vs float64: top-2 logits within \(worst) (an off-by-one position moves them by up to \(fixture.offByOne.maxLogitShift))")
        #expect(worst <= 2e-3)
    }
}
