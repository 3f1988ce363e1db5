import Foundation
@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// The measures of `eval`, `demo` and `check-model` (`LogitsComparison`), their dense-vs-sparse
/// driver (`PrefillComparison`) and greedy decoding with the KV cache, on hand-made rows and the
/// tiny random model.
@Suite("Evaluation: logits comparison, prefill comparison, greedy decoding")
struct EvaluationTests {
    @Test("KL, relative L2, top-1 and perplexity against closed forms")
    func logitsComparisonClosedForms() {
        var c = LogitsComparison()
        // reference softmax [1/4, 3/4], candidate [1/2, 1/2] (a tie: its argmax is token 0)
        c.add(reference: [0, Float(log(3.0))], candidate: [0, 0], next: 1)
        let kl = 0.25 * log(0.5) + 0.75 * log(1.5)
        #expect(abs(c.meanKL - kl) <= 1e-7)
        #expect(abs(c.maxRelativeL2 - 1) <= 1e-7 && abs(c.relativeL2 - 1) <= 1e-7)
        #expect(c.agreeing == 0 && c.positions == 1 && c.top1Agreement == 0)
        #expect(abs(c.perplexity.reference - 4.0 / 3) <= 1e-6 && abs(c.perplexity.candidate - 2) <= 1e-6)
        // An identical row: agreement, no divergence, and the largest relative L2 stays the first's.
        c.add(reference: [1, 2, 3], candidate: [1, 2, 3])
        #expect(c.agreeing == 1 && c.positions == 2 && abs(c.meanKL - kl / 2) <= 1e-7 && c.predicted == 1)
        #expect(abs(c.maxRelativeL2 - 1) <= 1e-7)
        // Overall relative L2: sqrt((log 3)^2 / ((log 3)^2 + 14)).
        let l3 = Double(Float(log(3.0)))
        #expect(abs(c.relativeL2 - (l3 * l3 / (l3 * l3 + 14)).squareRoot()) <= 1e-7)
        #expect(LogitsComparison.argmax([1, 5, 5, 2]) == 1)
    }

    @Test("The requirement: every position within the L2 bound, top-1 on the share asked, nothing compared never passes")
    func requirement() {
        let requirement = LogitsRequirement(maxRelativeL2: 0.1, minTop1Agreement: 0.5)
        #expect(!requirement.isMet(by: LogitsComparison()))
        var close = LogitsComparison()
        close.add(reference: [[1, 2], [2, 1]], candidate: [[1, 2.1], [2.1, 1]])
        #expect(requirement.isMet(by: close))
        var far = close
        far.add(reference: [1, 2], candidate: [1, 3])   // one position 0.45 away
        #expect(!requirement.isMet(by: far))
        var flipped = LogitsComparison()
        flipped.add(reference: [[1, 1.01], [1, 1.01]], candidate: [[1.01, 1], [1.01, 1]])
        #expect(flipped.maxRelativeL2 < 0.1 && !requirement.isMet(by: flipped))
    }

    @Test("Dense against dense: identical (every position or the last ones); against a narrow A-shape: apart; first-token logits as the reference's")
    func prefillComparison() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 7))
        let engine = try TestDevice.engine()
        let tokens = (0..<60).map { Int32(($0 * 37 + 11) % 100) }
        let dense = try PrefillComparison(model: reference, engine: engine, capacity: 64,
                                          plans: Array(repeating: .uniform(.dense, heads: 4), count: 2))
        var done: [Int] = []
        let same = try dense.compare(tokens: tokens, chunk: 25) { done.append($0) }
        #expect(done == [0, 25, 50])
        #expect(same.positions == 60 && same.agreeing == 60 && same.predicted == 59)
        #expect(same.relativeL2 == 0 && same.meanKL == 0)
        // The last 30 positions only: a suffix of the second chunk and all of the third.
        let last = try dense.compare(tokens: tokens, chunk: 25, lastPositions: 30)
        #expect(last.positions == 30 && last.predicted == 29)

        let narrow = try PrefillComparison(model: reference, engine: engine, capacity: 64,
                                           plans: Array(repeating: .uniform(.aShape(sink: 1, window: 4), heads: 4), count: 2),
                                           options: SparseOptions(denseFallback: .never))
        let apart = try narrow.compare(tokens: tokens, chunk: 64)
        #expect(apart.meanKL > 1e-4 && apart.maxRelativeL2 > 1e-3, "\(apart)")

        let first = try narrow.firstToken(tokens: tokens, chunk: 16)
        let want = reference.logits(tokens: tokens, positions: 59..<60)[0].map(Double.init)
        #expect(relativeL2(first.denseLogits, want) <= 1e-4)
        #expect(first.dense.milliseconds > 0 && first.dense.attentionMilliseconds ?? 0 > 0)
        #expect(narrow.dense.position == 60 && narrow.sparse.position == 60)

        #expect(throws: AttentionError.invalidArgument("1 layer plans for a model of 2 layers")) {
            try PrefillComparison(model: reference, engine: engine, capacity: 8, plans: [.uniform(.dense, heads: 4)])
        }
        #expect(throws: AttentionError.invalidArgument("chunk must be >= 1, got 0")) { try dense.compare(tokens: tokens, chunk: 0) }
    }

    /// The KV-cache decode against the reference recomputing the whole sequence at every step: a
    /// token at a wrong RoPE position, or a cache row written in the wrong place, changes the
    /// logits by far more than 1e-4.
    @Test("Greedy decoding with the KV cache equals the reference's step by step")
    func greedyDecodeAgainstReference() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 9))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 40)
        var sequence: [Int32] = [5, 17, 3, 99, 42, 8, 61, 23, 70, 14]
        let prompt = sequence
        for _ in 0..<12 {
            let row = reference.logits(tokens: sequence, positions: (sequence.count - 1)..<sequence.count)[0]
            let sorted = row.sorted(by: >)
            #expect(sorted[0] - sorted[1] > 1e-3, "a near tie at step \(sequence.count - prompt.count): the comparison would be unfair")
            sequence.append(Int32(LogitsComparison.argmax(row)))
        }
        let first = try model.prefill(tokens: prompt)[0]
        let decoded = try model.greedyDecode(after: first, count: 12)
        #expect(decoded == Array(sequence[prompt.count...]))
        #expect(model.position == prompt.count + 11)   // the last token is not prefilled
        // A stop token ends the decode, included.
        model.reset()
        let stop = sequence[prompt.count + 2], end = try #require(sequence[prompt.count...].firstIndex(of: stop))
        let stopped = try model.greedyDecode(after: try model.prefill(tokens: prompt)[0], count: 12, stop: stop)
        #expect(stopped == Array(sequence[prompt.count...end]))
        #expect(try model.greedyDecode(after: first, count: 0).isEmpty)
    }
}
